"""The API follows DRF's conventions and says so in its schema: only staff in a role get a token;
missing or bad credentials are a 401 with a challenge, an insufficient role a 403."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cadences.roles import BILLING_MANAGERS, SUPERVISORS
from campaigns.models import Campaign
from tests.campaigns.dashboard_factories import make_campaign, make_user

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"
ENDPOINTS = ["/api/campaigns/", "/api/queue-items/", "/api/follow-up-tasks/", "/api/kpis/", "/api/schema/"]


def _token_for(username: str, password: str = PASSWORD, **kwargs: Any) -> Any:
    return APIClient().post("/api/token/", {"username": username, "password": password}, format="json", **kwargs)


@pytest.mark.parametrize("url", ENDPOINTS)
def test_missing_or_bad_credentials_are_a_401_with_a_challenge(url: str) -> None:
    for client in (APIClient(), APIClient(HTTP_AUTHORIZATION="Token not-a-real-token"), APIClient(HTTP_AUTHORIZATION="Token")):
        response = client.get(url)
        assert response.status_code == 401, url
        assert response["WWW-Authenticate"] == 'Token'


def test_an_insufficient_role_is_a_403() -> None:
    campaign = make_campaign(date=dt.date.today() + dt.timedelta(days=1), status=Campaign.Status.DRAFT)
    billing = APIClient()
    billing.force_authenticate(make_user("bea.billing", group=BILLING_MANAGERS))
    assert billing.get("/api/campaigns/").status_code == 200
    assert billing.post(f"/api/campaigns/{campaign.pk}/start/").status_code == 403
    nobody = APIClient()
    nobody.force_authenticate(make_user("no.role"))  # staff, in no group
    assert nobody.get("/api/campaigns/").status_code == 403


def test_only_staff_in_a_role_can_obtain_a_token() -> None:
    make_user("sam.supervisor", group=SUPERVISORS)
    make_user("bea.billing", group=BILLING_MANAGERS)
    make_user("staff.no.role")
    client_user = get_user_model().objects.create_user("a.client", password=PASSWORD)
    # Permissions alone do not make an account staff.
    client_user.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    inactive = make_user("gone.supervisor", group=SUPERVISORS, is_active=False)

    for username in ("sam.supervisor", "bea.billing"):
        response = _token_for(username)
        assert response.status_code == 200 and response.json()["token"]
    for username in ("staff.no.role", "a.client"):
        refused = _token_for(username)
        assert refused.status_code == 403, username
        assert "Only staff in a role" in refused.json()["detail"]
    assert _token_for(inactive.username).status_code == 401
    assert set(Token.objects.values_list("user__username", flat=True)) == {"sam.supervisor", "bea.billing"}


def test_a_token_an_account_holds_opens_nothing_once_it_is_not_staff() -> None:
    user = get_user_model().objects.create_user("former.staff", password=PASSWORD)
    user.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    token = Token.objects.create(user=user)
    assert APIClient(HTTP_AUTHORIZATION=f"Token {token.key}").get("/api/campaigns/").status_code == 403


def test_the_token_endpoint_says_what_was_wrong() -> None:
    make_user("sam.supervisor", group=SUPERVISORS)
    wrong = _token_for("sam.supervisor", "not-the-password")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Token")
    assert APIClient().post("/api/token/", {"username": "sam.supervisor"}, format="json").status_code == 400
    assert APIClient().post("/api/token/", [1, 2], format="json").status_code == 400
    # A stale token in the header does not stand in the way of asking for a new one.
    assert _token_for("sam.supervisor", HTTP_AUTHORIZATION="Token stale").status_code == 200


def test_the_schema_lists_every_status_an_endpoint_returns() -> None:
    schema = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            expected = {"200", "400", "401", "403", "415", "429"} if path == "/api/token/" else {"401", "403"}
            if "{" in path:
                expected.add("404")
            if method in ("post", "put", "patch") and "requestBody" in operation:
                expected |= {"400", "415"}
            if method == "get" and any(p["name"] == "page" for p in operation.get("parameters", [])):
                expected |= {"400", "404"}
            if path.endswith(("/start/", "/pause/", "/resume/", "/stop/")):
                expected.add("409")
            if path == "/api/kpis/":
                expected.add("400")
            if not expected <= codes:
                missing.append((method.upper(), path, sorted(expected - codes)))
    assert missing == []
    assert "/api/schema/" not in schema["paths"]
