"""Accounts, the sandbox Stripe over a live server, and signed Stripe events, for the payment tests."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest
import requests
import stripe
from django.conf import settings

from cadences.models import Segment
from campaigns.models import Account
from integrations import clock, http
from integrations.sandbox.delivery import sandbox_dispatch_due
from integrations.sandbox.models import SimulatorConfig
from integrations.stripe import client as stripe_client


def account(client_id: str = "C-100", *, amount_due: str = "120.50", phone: str = "+12125550147", **fields: Any) -> Account:
    now = clock.now()
    fields.setdefault("segment", Segment.objects.filter(name="RED Initial").first())
    return Account.objects.create(
        client_id=client_id, name="Jordan Avery", phone=phone, amount_due=Decimal(amount_due), days_past_due=20,
        timezones="America/New_York", state="NY", first_seen_at=now, last_seen_at=now, **fields,
    )  # fmt: skip


@pytest.fixture
def stripe_sandbox(settings, live_server, shipped_cadences):
    """Stripe simulated, served by a live server the library reaches over HTTP."""
    settings.STRIPE_API_KEY = ""
    settings.HEYMARKET_API_TOKEN = ""
    settings.SANDBOX_ENABLED = True
    settings.SANDBOX_APP_URL = live_server.url
    settings.PAYMENT_LINK_TEMPLATE = live_server.url + "/pay/{token}/"
    stripe_client._local.__dict__.clear()
    http.reset_sessions()
    config = SimulatorConfig.load()
    config.stripe_completion_rate = 1.0
    config.stripe_completion_delay_seconds = 0
    config.stripe_open_rate = 0
    config.save()
    yield live_server
    stripe_client._local.__dict__.clear()
    http.reset_sessions()


def path_of(link: str) -> str:
    return "/pay/" + link.split("/pay/", 1)[1]


def deliver_all(rounds: int = 5) -> None:
    """Deliver every due simulator webhook (Stripe's events, the clients' opens), as they come due."""
    for _ in range(rounds):
        if not sandbox_dispatch_due(now=clock.now() + __import__("datetime").timedelta(hours=1)):
            return


def signed_post(url: str, event: dict[str, Any], *, secret: str | None = None, timestamp: int | None = None) -> requests.Response:
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(
        body, secret or settings.STRIPE_SANDBOX_WEBHOOK_SECRET, timestamp=timestamp or int(time.time())
    )
    return requests.post(url, data=body.encode(), headers={"Stripe-Signature": header, "Content-Type": "application/json"}, timeout=10)


def session_completed(*, client_id: str, cents: int, payment_intent: str, event_id: str, session_id: str = "cs_test_x") -> dict[str, Any]:
    return {
        "id": event_id, "object": "event", "type": "checkout.session.completed", "created": int(time.time()), "livemode": False,
        "data": {"object": {
            "id": session_id, "object": "checkout.session", "amount_total": cents, "currency": "usd", "client_reference_id": client_id,
            "metadata": {"client_id": client_id}, "payment_intent": payment_intent, "payment_status": "paid", "status": "complete",
        }},
    }  # fmt: skip


def intent_succeeded(*, client_id: str, cents: int, payment_intent: str, event_id: str) -> dict[str, Any]:
    return {
        "id": event_id, "object": "event", "type": "payment_intent.succeeded", "created": int(time.time()), "livemode": False,
        "data": {"object": {
            "id": payment_intent, "object": "payment_intent", "amount": cents, "amount_received": cents, "currency": "usd",
            "metadata": {"client_id": client_id}, "status": "succeeded",
        }},
    }  # fmt: skip
