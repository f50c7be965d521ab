"""The API token endpoint takes a password too: guessing there is throttled like the sign-in page."""

from __future__ import annotations

import pytest
from django.test import Client

from cadences.roles import SUPERVISORS
from tests.campaigns.dashboard_factories import make_user

pytestmark = pytest.mark.django_db


def test_token_guessing_is_paused_after_the_limit(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_THROTTLE_MAX_FAILURES = 3
    make_user("sup", group=SUPERVISORS, password="right-password-123")
    for _ in range(3):
        assert client.post("/api/token/", {"username": "sup", "password": "guess"}).status_code == 401
    paused = client.post("/api/token/", {"username": "sup", "password": "right-password-123"})
    assert paused.status_code == 429, "even the right password waits while the account is paused"
    assert "try again" in paused.json()["detail"]


def test_a_correct_password_gets_a_token_and_clears_earlier_failures(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_THROTTLE_MAX_FAILURES = 3
    make_user("sup", group=SUPERVISORS, password="right-password-123")
    client.post("/api/token/", {"username": "sup", "password": "guess"})
    ok = client.post("/api/token/", {"username": "sup", "password": "right-password-123"})
    assert ok.status_code == 200 and ok.json()["token"]
    for _ in range(2):
        client.post("/api/token/", {"username": "sup", "password": "guess"})
    assert client.post("/api/token/", {"username": "sup", "password": "right-password-123"}).status_code == 200
