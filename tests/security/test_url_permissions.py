"""Every URL of the project, requested as anonymous, as a supervisor and as a billing manager.

The list is built from the resolver itself, so a URL added later is walked too: its path
converters are filled with an existing object's key where one exists (the admin model pages,
the campaign pages), otherwise with a harmless dummy.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from cadences.models import Segment
from cadences.roles import BILLING_MANAGERS, SUPERVISORS
from campaigns.models import Campaign
from tests.campaigns.dashboard_factories import make_campaign, make_item, make_segment, make_step, make_user

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
# Answers an anonymous visitor may get on purpose.
PUBLIC_PAGES = {"admin/login/", "api/token/"}
# A client's own payment pages, opened from a text: the signed token is the permission.
CLIENT_PAGES = ("pay/",)


@dataclass(frozen=True)
class Route:
    url: str
    template: str
    name: str | None


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, str | None]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


def _admin_model_pk(template: str) -> str | None:
    match = re.match(r"admin/(\w+)/(\w+)/", template)
    if not match:
        return None
    try:
        model = apps.get_app_config(match.group(1)).get_model(match.group(2))
    except LookupError:
        return None
    first = model._default_manager.order_by("pk").first()
    return str(first.pk) if first is not None else None


def _fill(template: str, values: dict[str, str]) -> str:
    admin_pk = _admin_model_pk(template)

    def value(name: str) -> str:
        if name in ("object_id", "id") and admin_pk is not None:
            return admin_pk
        return values.get(name, "1")

    # The regular expressions (REST router, admin app index): named groups, escaped dots,
    # anchors, optional slash; then the path converters.
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: value(m.group(1)), template)
    url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: value(m.group(1)), url)
    url = url.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
    return "/" + url


def all_routes(values: dict[str, str]) -> list[Route]:
    return [Route(_fill(template, values), template, name) for template, name in _walk(get_resolver().url_patterns)]


@pytest.fixture
def world() -> dict[str, Any]:
    segment = make_segment()
    step = make_step(segment)
    campaign = make_campaign(date=dt.date(2025, 6, 10), status=Campaign.Status.RUNNING)
    item = make_item(campaign, step)
    supervisor = make_user("sam.supervisor", group=SUPERVISORS)
    billing = make_user("bea.billing", group=BILLING_MANAGERS)
    values = {
        "pk": str(campaign.pk),
        "action": "pause",
        "client_id": item.client_id,
        "content_type_id": str(ContentType.objects.get_for_model(Campaign).pk),
        "object_id": str(campaign.pk),
        "call_id": "call_does_not_exist",
        "ring_group": "billing",
        "format": "json",
        "app_label": "campaigns",
        "url": "campaigns/campaign/",
    }
    return {"campaign": campaign, "item": item, "segment": segment, "step": step, "supervisor": supervisor, "billing": billing, "values": values}


def client_for(user: Any | None) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def is_login_redirect(response: Any) -> bool:
    return response.status_code == 302 and response["Location"].startswith(LOGIN)


def test_the_walk_covers_the_whole_project(world: dict[str, Any]) -> None:
    urls = {route.url for route in all_routes(world["values"])}
    campaign = world["campaign"]
    for expected in (
        "/dashboard/",
        f"/dashboard/campaigns/{campaign.pk}/pause/",
        f"/api/campaigns/{campaign.pk}/stop/",
        f"/admin/cadences/segment/{Segment.objects.order_by('pk').first().pk}/change/",
        "/webhooks/retell/",
        "/webhooks/heymarket/",
        "/sandbox/config",
    ):
        assert expected in urls
    assert len(urls) > 150


def test_anonymous_gets_no_staff_page_and_no_api(world: dict[str, Any]) -> None:
    anonymous = client_for(None)
    wrong = []
    for route in all_routes(world["values"]):
        if route.template.startswith(("sandbox/", "webhooks/", *CLIENT_PAGES)) or route.template in PUBLIC_PAGES:
            continue
        for method in ("get", "post"):
            response = getattr(anonymous, method)(route.url)
            if route.template.startswith("api/"):
                ok = response.status_code in (401, 403, 404, 405) or is_login_redirect(response)
            elif route.template.startswith("admin/"):
                # Logout is POST-only; the admin's catch-all sends unknown pages to the login too.
                ok = is_login_redirect(response) or (route.template == "admin/logout/" and response.status_code in (302, 405))
            else:
                ok = is_login_redirect(response) or response.status_code in (403, 404, 405)
            if not ok:
                wrong.append((method.upper(), route.url, response.status_code))
    assert wrong == []


@pytest.mark.parametrize("url", ["/webhooks/retell/", "/webhooks/retell/inbound/", "/webhooks/heymarket/"])
def test_webhooks_refuse_requests_without_credentials(client: Client, url: str) -> None:
    anonymous = client_for(None)
    assert anonymous.get(url).status_code == 405
    assert anonymous.post(url, data=b"", content_type="application/json").status_code in (400, 401)
    assert anonymous.post(url, data=b'{"event": "call_ended", "call": {}}', content_type="application/json").status_code in (400, 401)
    assert anonymous.post(url, data=b"\xff\xfe not json", content_type="application/json").status_code in (400, 401)


@pytest.mark.parametrize("role", ["anonymous", "supervisor", "billing"])
def test_no_url_answers_500_for_any_role(world: dict[str, Any], role: str) -> None:
    client = client_for(None if role == "anonymous" else world[role])
    errors = []
    for route in all_routes(world["values"]):
        if route.template.startswith("sandbox/") and "dispatch" in route.template:
            continue  # delivers due webhooks to a live server; covered by the sandbox tests
        response = client.get(route.url)
        if response.status_code >= 500:
            errors.append((route.url, response.status_code))
    assert errors == []


def test_sandbox_urls_answer_404_when_every_vendor_is_live(world: dict[str, Any], settings: Any) -> None:
    settings.RETELL_API_KEY = "live-key"
    settings.HEYMARKET_API_TOKEN = "live-token"
    settings.DIALFLOW_URL = "https://dialflow.example.com"
    settings.DIALFLOW_API_KEY = "live-dialflow"
    settings.STRIPE_API_KEY = "sk_live_key"
    anonymous = client_for(None)
    for route in all_routes(world["values"]):
        if route.template.startswith("sandbox/"):
            # A POST-only simulator may refuse a GET before it looks at the mode; nothing is served.
            assert anonymous.get(route.url).status_code in (404, 405), route.url
            assert anonymous.post(route.url).status_code in (404, 405), route.url
            if anonymous.get(route.url).status_code == 405:
                assert anonymous.post(route.url).status_code == 404, route.url


def test_sandbox_urls_are_served_in_sandbox_mode(world: dict[str, Any]) -> None:
    anonymous = client_for(None)
    # The vendor-shaped endpoints answer (their keys decide); the controls want a staff session.
    assert anonymous.get("/sandbox/retell/get-concurrency").status_code in (200, 401)
    assert anonymous.get("/sandbox/config").status_code == 403
    assert client_for(world["supervisor"]).get("/sandbox/config").status_code == 200


# The explicit matrix for the pages that matter: GET as each role.
# "login" means a redirect to the login page; the API answers an anonymous caller 401 with a
# `WWW-Authenticate: Token` challenge, and a role that may not do something 403.
MATRIX: list[tuple[str, dict[str, int | str]]] = [
    ("/dashboard/", {"anonymous": "login", "supervisor": 200, "billing": 200}),
    ("/dashboard/campaigns/{campaign}/pause/", {"anonymous": "login", "supervisor": 200, "billing": 403}),
    ("/api/campaigns/", {"anonymous": 401, "supervisor": 200, "billing": 200}),
    ("/api/campaigns/{campaign}/", {"anonymous": 401, "supervisor": 200, "billing": 200}),
    ("/api/schema/", {"anonymous": 401, "supervisor": 200, "billing": 200}),
    ("/admin/cadences/segment/{segment}/change/", {"anonymous": "login", "supervisor": 200, "billing": 200}),
    ("/admin/cadences/smstemplate/{template}/change/", {"anonymous": "login", "supervisor": 200, "billing": 200}),
    ("/admin/cadences/smstemplate/add/", {"anonymous": "login", "supervisor": 403, "billing": 200}),
    ("/admin/campaigns/campaign/{campaign}/change/", {"anonymous": "login", "supervisor": 200, "billing": 200}),
    ("/admin/auth/user/", {"anonymous": "login", "supervisor": 403, "billing": 403}),
]

# POSTs that change state: who may do them.
POST_MATRIX: list[tuple[str, dict[str, int | str]]] = [
    ("/dashboard/campaigns/{campaign}/pause/", {"anonymous": "login", "supervisor": 302, "billing": 403}),
    ("/api/campaigns/{campaign}/pause/", {"anonymous": 401, "supervisor": 200, "billing": 403}),
    ("/dashboard/campaigns/create/", {"anonymous": "login", "supervisor": 302, "billing": 403}),
]


def _expand(url: str, world: dict[str, Any]) -> str:
    return url.format(campaign=world["campaign"].pk, segment=world["segment"].pk, template=world["step"].sms_template_id)


def _check(response: Any, expected: int | str) -> bool:
    return is_login_redirect(response) if expected == "login" else response.status_code == expected


@pytest.mark.parametrize("role", ["anonymous", "supervisor", "billing"])
def test_the_role_matrix_for_reading(world: dict[str, Any], role: str) -> None:
    client = client_for(None if role == "anonymous" else world[role])
    got = {url: client.get(_expand(url, world)).status_code for url, _ in MATRIX}
    wrong = {url: (got[url], want[role]) for url, want in MATRIX if not _check(client.get(_expand(url, world)), want[role])}
    assert wrong == {}, got


@pytest.mark.parametrize("role", ["anonymous", "supervisor", "billing"])
@pytest.mark.parametrize(("url", "want"), POST_MATRIX, ids=[url for url, _ in POST_MATRIX])
def test_the_role_matrix_for_control(world: dict[str, Any], role: str, url: str, want: dict[str, int | str]) -> None:
    client = client_for(None if role == "anonymous" else world[role])
    before = Campaign.objects.count(), world["campaign"].status
    response = client.post(_expand(url, world))
    assert _check(response, want[role]), response.status_code
    if want[role] in ("login", 401, 403):
        world["campaign"].refresh_from_db()
        assert (Campaign.objects.count(), world["campaign"].status) == before
