"""Sign-in throttling on the admin login (the dashboard's login page)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client, RequestFactory

from access import services
from access.forms import client_ip
from access.models import FailedLogin
from tests.campaigns.dashboard_factories import make_user

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PASSWORD = "pw-for-tests-1"
T0 = dt.datetime(2025, 6, 10, 13, 0, tzinfo=dt.timezone.utc)


def attempt(client: Client, username: str, password: str, *, ip: str = "203.0.113.7") -> Any:
    return client.post(f"{LOGIN}?next=/dashboard/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def is_throttled(response: Any) -> bool:
    return response.status_code == 200 and b"Too many failed sign-in attempts" in response.content


def signed_in(response: Any) -> bool:
    return response.status_code == 302 and response["Location"] == "/dashboard/"


def test_five_wrong_passwords_lock_the_username_even_for_the_right_one(settings: Any) -> None:
    make_user("sam.supervisor")
    client = Client()
    for _ in range(settings.LOGIN_THROTTLE_MAX_FAILURES):
        response = attempt(client, "sam.supervisor", "wrong")
        assert response.status_code == 200 and not is_throttled(response)
    refused = attempt(client, "sam.supervisor", PASSWORD)
    assert is_throttled(refused)
    assert b"try again in 15 minute(s)" in refused.content
    assert "_auth_user_id" not in client.session
    # From another address too: the username is what is being guessed.
    assert is_throttled(attempt(Client(), "SAM.Supervisor", PASSWORD, ip="198.51.100.9"))
    # Refusals are not counted, so they do not extend the lock.
    assert FailedLogin.objects.count() == settings.LOGIN_THROTTLE_MAX_FAILURES


def test_another_username_is_not_locked_by_someone_elses_failures() -> None:
    make_user("sam.supervisor")
    make_user("bea.billing")
    client = Client()
    for _ in range(5):
        attempt(client, "sam.supervisor", "wrong")
    assert signed_in(attempt(Client(), "bea.billing", PASSWORD))


def test_the_lock_ends_when_the_window_passes() -> None:
    make_user("sam.supervisor")
    for _ in range(5):
        attempt(Client(), "sam.supervisor", "wrong")
    assert is_throttled(attempt(Client(), "sam.supervisor", PASSWORD))
    # Age the stored failures past the 15-minute window.
    FailedLogin.objects.update(at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=15, seconds=1))
    assert signed_in(attempt(Client(), "sam.supervisor", PASSWORD))


def test_one_address_guessing_many_usernames_is_refused(settings: Any) -> None:
    settings.LOGIN_THROTTLE_MAX_FAILURES_PER_IP = 8
    make_user("bea.billing")
    for n in range(8):
        attempt(Client(), f"guess{n}", "wrong", ip="203.0.113.50")
    assert is_throttled(attempt(Client(), "bea.billing", PASSWORD, ip="203.0.113.50"))
    assert signed_in(attempt(Client(), "bea.billing", PASSWORD, ip="203.0.113.51"))


def test_a_successful_sign_in_clears_the_usernames_failures() -> None:
    make_user("sam.supervisor")
    for _ in range(4):
        attempt(Client(), "sam.supervisor", "wrong")
    assert signed_in(attempt(Client(), "sam.supervisor", PASSWORD))
    assert not FailedLogin.objects.filter(username="sam.supervisor").exists()
    for _ in range(4):
        attempt(Client(), "sam.supervisor", "wrong")
    assert signed_in(attempt(Client(), "sam.supervisor", PASSWORD))


def test_a_right_password_for_a_non_staff_account_is_not_counted_as_a_guess() -> None:
    make_user("cleo.client", is_staff=False)
    for _ in range(6):
        response = attempt(Client(), "cleo.client", PASSWORD)
        assert response.status_code == 200 and not is_throttled(response)
    assert not FailedLogin.objects.exists()


# --- The rule, with an explicit clock ---------------------------------------------------------


def test_the_window_is_counted_from_the_limit_th_most_recent_failure() -> None:
    for minute in (0, 2, 4, 6, 8):
        services.login_failure_record(username="Sam", ip="203.0.113.7", now=T0 + dt.timedelta(minutes=minute))
    throttle = services.login_throttle_check(username="sam", ip=None, now=T0 + dt.timedelta(minutes=9))
    assert throttle is not None and throttle.reason == "username"
    assert throttle.retry_after == dt.timedelta(minutes=6)  # the failure at minute 0 leaves at 15
    assert services.login_throttle_check(username="sam", ip=None, now=T0 + dt.timedelta(minutes=15)) is None
    assert services.login_throttle_check(username="someone.else", ip=None, now=T0 + dt.timedelta(minutes=9)) is None


def test_old_failures_are_deleted_as_new_ones_arrive() -> None:
    services.login_failure_record(username="a", ip=None, now=T0)
    services.login_failure_record(username="b", ip=None, now=T0 + dt.timedelta(minutes=16))
    assert list(FailedLogin.objects.values_list("username", flat=True)) == ["b"]


def test_the_address_is_the_proxys_last_hop_not_what_the_client_claims(settings: Any) -> None:
    factory = RequestFactory()
    spoofed = factory.post(LOGIN, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7")
    settings.BEHIND_PROXY = True
    assert client_ip(spoofed) == "203.0.113.7"
    settings.BEHIND_PROXY = False
    assert client_ip(spoofed) == "10.0.0.2"
    assert client_ip(factory.post(LOGIN, REMOTE_ADDR="not-an-address")) is None
