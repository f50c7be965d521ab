"""The sandbox is closed in production: nothing mounted, no key from the source opens anything,
the controls want a staff session, and a simulator never sends a live vendor's secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

import billing_dialer.urls  # noqa: F401 - mounted as this run's settings say, before a test turns the sandbox off
from cadences.roles import SUPERVISORS
from campaigns.models import WebhookEvent
from integrations.dialflow import client as dialflow
from integrations.heymarket import client as heymarket
from integrations.http import IntegrationError
from integrations.retell import client as retell
from integrations.sandbox import heymarket as heymarket_simulator
from integrations.sandbox.models import SimulatedDelivery, SimulatedMessage, SimulatorConfig
from tests.campaigns.dashboard_factories import make_user

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "False",
    "SECRET_KEY": "k3x9-production-like-secret-value-with-enough-entropy-0f8a7d6c5b4e3f2a1",
    "ALLOWED_HOSTS": "dialer.example.com",
}
# Every key a reader of the source knows.
SOURCE_KEYS = [django_settings.RETELL_SANDBOX_KEY, heymarket.SANDBOX_TOKEN, dialflow.SANDBOX_KEY]
NEW_PATTERN = {"dialflow_pattern": [50, 50, 50]}


@pytest.fixture
def no_vendor_credentials(settings: Any) -> Any:
    settings.RETELL_API_KEY = ""
    settings.HEYMARKET_API_TOKEN = ""
    settings.DIALFLOW_URL = ""
    settings.DIALFLOW_API_KEY = ""
    return settings


@pytest.fixture
def production(no_vendor_credentials: Any) -> Any:
    """Production's sandbox setting, whatever the test run's DEBUG."""
    no_vendor_credentials.SANDBOX_ENABLED = False
    no_vendor_credentials.HEYMARKET_WEBHOOK_TOKEN = ""
    return no_vendor_credentials


def _resolves_in(env: dict[str, str], path: str) -> str:
    dropped = {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "SANDBOX_ENABLED", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    child = {k: v for k, v in os.environ.items() if k not in dropped} | env | {"DJANGO_SETTINGS_MODULE": "billing_dialer.settings"}
    code = (
        "import django; django.setup()\n"
        "from django.urls import Resolver404, resolve\n"
        f"try:\n    print(resolve({path!r}).url_name)\nexcept Resolver404:\n    print('not mounted')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_production_mounts_no_simulator() -> None:
    for path in ("/sandbox/config", "/sandbox/heymarket/inject", "/sandbox/retell/v2/create-phone-call"):
        assert _resolves_in(PRODUCTION_ENV, path) == "not mounted"
    # Development mounts them; so does production when an operator asks for it explicitly.
    assert _resolves_in({"DEBUG": "True"}, "/sandbox/config") == "sandbox-config"
    assert _resolves_in(PRODUCTION_ENV | {"SANDBOX_ENABLED": "True"}, "/sandbox/config") == "sandbox-config"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/sandbox/config"),
        ("patch", "/sandbox/config"),
        ("post", "/sandbox/dispatch"),
        ("post", "/sandbox/heymarket/inject"),
        ("post", "/sandbox/retell/v2/create-phone-call"),
        ("get", "/sandbox/retell/get-concurrency"),
        ("get", "/sandbox/dialflow/v1/ring-groups/billing/availability"),
        ("post", "/sandbox/heymarket/v1/message/send"),
    ],
)
def test_with_the_sandbox_off_no_source_key_opens_a_simulator(production: Any, method: str, url: str) -> None:
    before = SimulatorConfig.load().dialflow_pattern
    for key in SOURCE_KEYS:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
        if method == "get":
            response = Client().get(url, **headers)
        else:
            response = getattr(Client(), method)(url, json.dumps(NEW_PATTERN), content_type="application/json", **headers)
        assert response.status_code == 404, (url, key)
    assert SimulatorConfig.load().dialflow_pattern == before


def test_the_free_agent_pattern_cannot_be_changed_without_a_staff_session(no_vendor_credentials: Any) -> None:
    before = SimulatorConfig.load().dialflow_pattern
    for key in SOURCE_KEYS:
        anonymous = Client().post("/sandbox/config", json.dumps(NEW_PATTERN), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
        assert anonymous.status_code == 403
    assert Client().get("/sandbox/config").status_code == 403
    assert Client().post("/sandbox/dispatch", HTTP_AUTHORIZATION=f"Bearer {django_settings.RETELL_SANDBOX_KEY}").status_code == 403
    assert SimulatorConfig.load().dialflow_pattern == before


def test_staff_may_look_and_only_those_allowed_may_change(no_vendor_credentials: Any) -> None:
    supervisor = Client()
    supervisor.force_login(make_user("sam.supervisor", group=SUPERVISORS))
    assert supervisor.get("/sandbox/config").status_code == 200
    assert supervisor.post("/sandbox/config", json.dumps(NEW_PATTERN), content_type="application/json").status_code == 403
    client_user = get_user_model().objects.create_user("not.staff", password="pw-for-tests-1")
    outsider = Client()
    outsider.force_login(client_user)
    assert outsider.get("/sandbox/config").status_code == 403

    admin = get_user_model().objects.create_superuser("sandbox.admin", password="pw-for-tests-1")
    # A session is a cookie a browser sends by itself: the change needs the CSRF token too.
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(admin)
    assert forged.post("/sandbox/config", json.dumps(NEW_PATTERN), content_type="application/json").status_code == 403
    assert SimulatorConfig.load().dialflow_pattern != NEW_PATTERN["dialflow_pattern"]
    allowed = Client()
    allowed.force_login(admin)
    assert allowed.post("/sandbox/config", json.dumps(NEW_PATTERN), content_type="application/json").status_code == 200
    assert SimulatorConfig.load().dialflow_pattern == NEW_PATTERN["dialflow_pattern"]


def test_a_reply_cannot_be_injected_without_a_staff_session(no_vendor_credentials: Any) -> None:
    body = json.dumps({"phone": "+15105550147", "text": "STOP"})
    for key in SOURCE_KEYS:
        response = Client().post("/sandbox/heymarket/inject", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 403
    assert not SimulatedMessage.objects.exists() and not SimulatedDelivery.objects.exists()


def test_a_simulated_reply_never_carries_the_live_webhook_token(no_vendor_credentials: Any) -> None:
    no_vendor_credentials.HEYMARKET_WEBHOOK_TOKEN = "live-heymarket-webhook-secret"
    heymarket_simulator.inject_inbound(phone="+15105550147", text="STOP", now=timezone.now())
    deliveries = list(SimulatedDelivery.objects.all())
    assert {d.event for d in deliveries} == {"message_recieved", "target_opt_out"}
    for delivery in deliveries:
        assert delivery.payload["token"] == heymarket.SANDBOX_WEBHOOK_TOKEN
        assert "live-heymarket-webhook-secret" not in json.dumps(delivery.payload)
    # The app still takes the simulator's deliveries while HeyMarket is simulated…
    assert heymarket.verify_webhook_token(heymarket.SANDBOX_WEBHOOK_TOKEN)
    # …and never once HeyMarket is live.
    no_vendor_credentials.HEYMARKET_API_TOKEN = "hm-live"
    assert not heymarket.verify_webhook_token(heymarket.SANDBOX_WEBHOOK_TOKEN)
    assert heymarket.verify_webhook_token("live-heymarket-webhook-secret")


def test_with_the_sandbox_off_webhooks_signed_with_source_keys_are_refused(production: Any) -> None:
    body = json.dumps({"event": "call_ended", "call": {"call_id": "call_forged", "call_status": "ended"}})
    signature = retell.sign(body, api_key=django_settings.RETELL_SANDBOX_KEY, timestamp_ms=int(timezone.now().timestamp() * 1000))
    for url in ("/webhooks/retell/", "/webhooks/retell/inbound/"):
        response = Client().post(url, body, content_type="application/json", HTTP_X_RETELL_SIGNATURE=signature)
        assert response.status_code == 401, url
    forged = {"type": "target_opt_out", "id": 4242, "token": heymarket.SANDBOX_WEBHOOK_TOKEN, "event_data": {"id": 1, "target": "15105550147"}}
    assert Client().post("/webhooks/heymarket/", json.dumps(forged), content_type="application/json").status_code == 401
    assert not WebhookEvent.objects.exists()


def test_a_vendor_neither_live_nor_simulated_says_what_to_set(production: Any) -> None:
    with pytest.raises(IntegrationError, match="set RETELL_API_KEY") as refused:
        retell.get_concurrency()
    assert refused.value.permanent
    with pytest.raises(IntegrationError, match="set HEYMARKET_API_TOKEN"):
        heymarket.get_contact_status("+15105550147")
    assert dialflow.availability("billing")[0] == 0  # unknown availability releases nothing
