"""Security headers on staff pages and the dashboard; CSRF tokens on every state-changing form."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.test import Client

from cadences.roles import BILLING_MANAGERS, SUPERVISORS
from campaigns.models import Campaign
from tests.campaigns.dashboard_factories import make_campaign, make_item, make_segment, make_step, make_user

pytestmark = pytest.mark.django_db

_FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S | re.I)
_POST = re.compile(r"method=[\"']?post", re.I)
_TOKEN = re.compile(r"<input[^>]+name=[\"']csrfmiddlewaretoken[\"'][^>]+value=[\"'][^\"']{32,}", re.I)


@pytest.fixture
def world() -> dict[str, Any]:
    segment = make_segment()
    step = make_step(segment)
    campaign = make_campaign(date=dt.date.today(), status=Campaign.Status.RUNNING)
    make_item(campaign, step)
    return {
        "segment": segment,
        "step": step,
        "campaign": campaign,
        "supervisor": make_user("sam.supervisor", group=SUPERVISORS),
        "billing": make_user("bea.billing", group=BILLING_MANAGERS),
    }


def pages(world: dict[str, Any]) -> list[str]:
    return [
        "/dashboard/",
        f"/dashboard/campaigns/{world['campaign'].pk}/pause/",
        "/admin/",
        f"/admin/campaigns/campaign/{world['campaign'].pk}/change/",
        f"/admin/cadences/segment/{world['segment'].pk}/change/",
        f"/admin/cadences/smstemplate/{world['step'].sms_template_id}/change/",
    ]


def logged_in(user: Any, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", ["supervisor", "billing"])
def test_staff_pages_and_the_dashboard_carry_the_security_headers(world: dict[str, Any], role: str) -> None:
    client = logged_in(world[role])
    for url in pages(world):
        response = client.get(url)
        if response.status_code == 403:
            continue  # a billing manager's confirm page; the 403 still carries the headers below
        assert response.status_code == 200, url
        csp = response.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
        assert response.headers["X-Frame-Options"] == "DENY", url
        assert response.headers["Referrer-Policy"] == "same-origin", url


def test_refusals_and_redirects_carry_the_headers_too(world: dict[str, Any]) -> None:
    login_page = Client().get("/admin/login/")
    assert login_page.status_code == 200 and login_page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in login_page.headers["Content-Security-Policy"]
    for response in (
        Client().get("/dashboard/"),
        logged_in(world["billing"]).get(f"/dashboard/campaigns/{world['campaign'].pk}/pause/"),
    ):
        assert response.status_code in (302, 403)
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" in response.headers


def test_every_post_form_on_these_pages_has_a_csrf_token(world: dict[str, Any]) -> None:
    client = logged_in(world["supervisor"])
    checked = 0
    for url in pages(world):
        html = client.get(url).content.decode()
        for form in _FORM.findall(html):
            if _POST.search(form.split(">", 1)[0]):
                assert _TOKEN.search(form), (url, form[:200])
                checked += 1
    login_form = _FORM.findall(Client().get("/admin/login/").content.decode())
    assert login_form and all(_TOKEN.search(form) for form in login_form)
    assert checked >= 4  # the dashboard controls, the confirm page, the change forms


def test_posts_without_a_csrf_token_are_refused(world: dict[str, Any]) -> None:
    campaign = world["campaign"]
    client = logged_in(world["supervisor"], csrf=True)
    for url, data in (
        (f"/dashboard/campaigns/{campaign.pk}/pause/", {}),
        ("/dashboard/campaigns/create/", {}),
        (f"/api/campaigns/{campaign.pk}/pause/", {}),
        (f"/admin/campaigns/campaign/{campaign.pk}/change/", {"status": "stopped"}),
        ("/admin/campaigns/campaign/", {"action": "delete_selected", "_selected_action": [campaign.pk]}),
        ("/admin/logout/", {}),
    ):
        assert client.post(url, data).status_code == 403, url
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
    assert Campaign.objects.count() == 1
    assert "_auth_user_id" in client.session


def test_the_admin_login_refuses_a_post_without_a_csrf_token(world: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "sam.supervisor", "password": "pw-for-tests-1"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_the_same_post_with_its_token_goes_through(world: dict[str, Any]) -> None:
    # The refusals above are about the token, not the request: with it, the pause happens.
    campaign = world["campaign"]
    client = logged_in(world["supervisor"], csrf=True)
    page = client.get(f"/dashboard/campaigns/{campaign.pk}/pause/").content.decode()
    token = re.search(r"name=[\"']csrfmiddlewaretoken[\"'] value=[\"']([^\"']+)", page)
    assert token is not None
    response = client.post(f"/dashboard/campaigns/{campaign.pk}/pause/", {"csrfmiddlewaretoken": token.group(1)})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED


def test_the_policy_runs_no_inline_script(world: dict[str, Any]) -> None:
    # Page data travels in json_script blocks and every script is a static file; an inline
    # <script> or a javascript: link that an injection slipped in must not run.
    for response in (Client().get("/admin/login/"), logged_in(world["supervisor"]).get("/dashboard/")):
        directives = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";") if part.strip())
        assert directives["script-src"] == "'self'"
        assert "unsafe-inline" not in directives.get("default-src", "")
