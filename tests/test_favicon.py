"""Every page names the portal's icon, so no browser asks for a /favicon.ico that is not there."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_icon_is_a_small_svg_in_static() -> None:
    path = finders.find("favicon.svg")
    assert path is not None
    with open(path, encoding="utf-8") as handle:
        svg = handle.read()
    assert svg.startswith("<svg") and len(svg) < 2000


@pytest.mark.parametrize(
    "url_name",
    ["admin:login", "admin:index", "campaigns-dashboard", "campaigns-kpis", "campaigns-client-search", "campaigns-follow-ups", "campaigns-pay-thanks"],
)
def test_every_page_links_the_icon(admin_client: Client, client: Client, url_name: str) -> None:
    browser = client if url_name in ("admin:login", "campaigns-pay-thanks") else admin_client
    response = browser.get(reverse(url_name))
    assert response.status_code == 200, url_name
    link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', response.content.decode())
    assert link is not None, url_name
    assert browser.get(link.group(1)).status_code == 200
