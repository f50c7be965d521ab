"""Proxy headers are trusted only behind a proxy, and then only as far as the configured hops.

gunicorn faces clients directly unless BEHIND_PROXY says otherwise; a client that may choose its
own X-Forwarded-For picks a fresh address per guess and is never throttled by address.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, RequestFactory

from access.forms import client_ip
from access.models import FailedLogin

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/admin/login/"
PEER = "198.51.100.23"  # the one machine guessing


def _guess(client: Client, username: str, forwarded_for: str) -> Any:
    return client.post(
        f"{LOGIN}?next=/dashboard/",
        {"username": username, "password": "wrong"},
        REMOTE_ADDR=PEER,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


def _throttled(response: Any) -> bool:
    return response.status_code == 200 and b"Too many failed sign-in attempts" in response.content


def _rotating_addresses() -> itertools.count[int]:
    return itertools.count(1)


def test_proxy_trust_is_off_unless_configured() -> None:
    dropped = {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "BEHIND_PROXY", "BEHIND_PROXY_HOPS"}
    env = {k: v for k, v in os.environ.items() if k not in dropped} | {
        "DEBUG": "False",
        "SECRET_KEY": "k3x9-production-like-secret-value-with-enough-entropy-0f8a7d6c5b4e3f2a1",
        "DJANGO_SETTINGS_MODULE": "billing_dialer.settings",
    }
    code = "import django; django.setup(); from django.conf import settings as s; print(s.BEHIND_PROXY, s.SECURE_PROXY_SSL_HEADER)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.split()[-2:] == ["False", "None"], result.stderr


def test_a_rotating_forwarded_for_is_throttled_by_the_real_address(settings: Any) -> None:
    # 25 failed sign-ins from one machine, each under a new username and a new forwarded address.
    assert settings.BEHIND_PROXY is False  # the default
    client = Client()
    counter = _rotating_addresses()
    responses = [_guess(client, f"guess{n}", f"203.0.113.{next(counter)}") for n in range(25)]
    assert not any(_throttled(r) for r in responses[: settings.LOGIN_THROTTLE_MAX_FAILURES_PER_IP])
    assert all(_throttled(r) for r in responses[settings.LOGIN_THROTTLE_MAX_FAILURES_PER_IP :])
    assert set(FailedLogin.objects.values_list("ip", flat=True)) == {PEER}


def test_behind_one_proxy_only_the_entry_it_appended_counts(settings: Any) -> None:
    settings.BEHIND_PROXY = True
    settings.BEHIND_PROXY_HOPS = 1
    client = Client()
    counter = _rotating_addresses()
    # The client makes up the left part; the proxy appends the address it really saw.
    responses = [_guess(client, f"guess{n}", f"10.9.{next(counter)}.1, 192.0.2.44") for n in range(25)]
    assert all(_throttled(r) for r in responses[settings.LOGIN_THROTTLE_MAX_FAILURES_PER_IP :])
    assert set(FailedLogin.objects.values_list("ip", flat=True)) == {"192.0.2.44"}


def test_behind_two_proxies_the_outer_ones_entry_counts(settings: Any) -> None:
    settings.BEHIND_PROXY = True
    settings.BEHIND_PROXY_HOPS = 2
    factory = RequestFactory()
    # client-supplied, what the CDN saw (the client), what the load balancer saw (the CDN)
    request = factory.post(LOGIN, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 192.0.2.44, 10.0.0.7")
    assert client_ip(request) == "192.0.2.44"
    # A request that reached the inner proxy directly carries only that proxy's entry.
    assert client_ip(factory.post(LOGIN, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.45")) == "192.0.2.45"


def test_a_forwarded_scheme_is_not_believed_without_a_proxy(settings: Any) -> None:
    request = RequestFactory().get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    assert settings.SECURE_PROXY_SSL_HEADER is None
    assert request.is_secure() is False
