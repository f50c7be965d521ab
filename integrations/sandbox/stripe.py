"""The Stripe simulator: the Checkout Session endpoints the `stripe` library calls, the hosted
checkout page a client lands on, and the signed events it sends back once they pay.

Sessions are created from the library's form-encoded request (nested keys such as
`metadata[client_id]` and `line_items[0][price_data][unit_amount]`), honour `Idempotency-Key`,
and expire at their `expires_at`. When a client opens a session's page for the first time it
decides (seeded, so a day is reproducible) whether they pay — `stripe_completion_rate` — and
after `stripe_completion_delay_seconds` of simulated time schedules `checkout.session.completed`
and `payment_intent.succeeded` for the same PaymentIntent, signed like Stripe signs them. The
duplicate and out-of-order knobs apply as they do to Retell's events.

Reference: https://docs.stripe.com/api/checkout/sessions/object
Reference: https://docs.stripe.com/api/events/object
"""

from __future__ import annotations

import datetime as dt
import random
import re
import secrets
from typing import Any, Mapping

from django.conf import settings
from django.db import IntegrityError, transaction

from integrations.sandbox.models import SimulatedCheckoutSession, SimulatedDelivery, SimulatorConfig

VENDOR = "stripe"
API_VERSION = "2025-10-29.clover"
CHECKOUT_PATH = "/sandbox/stripe/checkout/"
# Stripe's bounds for a session's expiry.
MIN_EXPIRY = dt.timedelta(minutes=30)
MAX_EXPIRY = dt.timedelta(hours=24)
_METADATA_KEY = re.compile(r"^metadata\[([^\]]+)\]$")


class Refused(Exception):
    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param

    def as_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.kind}
        if self.param:
            error["param"] = self.param
        return {"error": error}


def _real(config: SimulatorConfig, simulated_seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=max(simulated_seconds, 0.0) / max(config.speed_factor, 0.01))


def _int(form: Mapping[str, str], name: str) -> int:
    value = form.get(name)
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise Refused(400, f"Invalid integer: {value!r}", param=name) from None


def session_object(session: SimulatedCheckoutSession, *, now: dt.datetime) -> dict[str, Any]:
    """The session as Stripe shows it at `now`."""
    paid = session.completes_at is not None and now >= session.completes_at
    if paid:
        status = "complete"
    elif now >= session.expires_at:
        status = "expired"
    else:
        status = "open"
    return {
        "id": session.session_id,
        "object": "checkout.session",
        "mode": "payment",
        "amount_total": session.amount_total,
        "amount_subtotal": session.amount_total,
        "currency": session.currency,
        "client_reference_id": session.client_reference_id or None,
        "metadata": session.metadata,
        "created": int(session.created_at.timestamp()),
        "expires_at": int(session.expires_at.timestamp()),
        "livemode": False,
        "payment_intent": session.payment_intent if paid else None,
        "payment_status": "paid" if paid else "unpaid",
        "status": status,
        "success_url": session.success_url,
        "cancel_url": session.cancel_url,
        "url": None if status != "open" else settings.SANDBOX_APP_URL.rstrip("/") + CHECKOUT_PATH + session.session_id,
    }


def session_create(*, form: Mapping[str, str], idempotency_key: str, now: dt.datetime) -> tuple[SimulatedCheckoutSession, bool]:
    """A new session (or the one this idempotency key made before). Returns (session, replayed)."""
    if idempotency_key:
        existing = SimulatedCheckoutSession.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, True
    if form.get("mode") != "payment":
        raise Refused(400, "The simulator supports mode=payment only.", param="mode")
    amount = _int(form, "line_items[0][price_data][unit_amount]") * max(_int(form, "line_items[0][quantity]"), 1)
    if amount < 50:
        raise Refused(400, "The Checkout Session's total amount due must add up to at least $0.50 usd", param="line_items")
    expires_at = dt.datetime.fromtimestamp(_int(form, "expires_at"), tz=dt.timezone.utc) if form.get("expires_at") else now + MAX_EXPIRY
    if not (MIN_EXPIRY - dt.timedelta(minutes=1) <= expires_at - now <= MAX_EXPIRY + dt.timedelta(minutes=1)):
        raise Refused(400, "expires_at must be between 30 minutes and 24 hours from now", param="expires_at")
    metadata = {m.group(1): str(v) for k, v in form.items() if (m := _METADATA_KEY.match(k))}
    try:
        with transaction.atomic():
            session = SimulatedCheckoutSession.objects.create(
                session_id="cs_test_" + secrets.token_hex(12),
                idempotency_key=idempotency_key or None,
                client_reference_id=str(form.get("client_reference_id") or "")[:200],
                amount_total=amount,
                currency=str(form.get("line_items[0][price_data][currency]") or "usd")[:3],
                metadata=metadata,
                success_url=str(form.get("success_url") or "")[:2000],
                cancel_url=str(form.get("cancel_url") or "")[:2000],
                created_at=now,
                expires_at=expires_at,
            )
    except IntegrityError:
        return SimulatedCheckoutSession.objects.get(idempotency_key=idempotency_key), True
    return session, False


def _event(event_type: str, obj: dict[str, Any], *, created: dt.datetime) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(created.timestamp()),
        "livemode": False,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": obj},
    }


def checkout_open(session: SimulatedCheckoutSession, *, now: dt.datetime) -> str:
    """The client lands on the hosted page: on the first visit, decide whether and when they pay
    and schedule the events. Returns what the page shows."""
    if session.completes_at is not None:
        return "paid" if now >= session.completes_at else "paying"
    if now >= session.expires_at:
        return "expired"
    config = SimulatorConfig.load()
    rng = random.Random(f"{config.seed}:{session.session_id}:checkout")
    pays = rng.random() < config.stripe_completion_rate
    claimed = SimulatedCheckoutSession.objects.filter(pk=session.pk, opened_at__isnull=True).update(opened_at=now)
    if not claimed or not pays:
        return "open"
    completes_at = now + _real(config, config.stripe_completion_delay_seconds)
    payment_intent = "pi_test_" + secrets.token_hex(12)
    SimulatedCheckoutSession.objects.filter(pk=session.pk).update(completes_at=completes_at, payment_intent=payment_intent)
    session.completes_at, session.payment_intent = completes_at, payment_intent
    completed = session_object(session, now=completes_at)
    intent = {
        "id": payment_intent,
        "object": "payment_intent",
        "amount": session.amount_total,
        "amount_received": session.amount_total,
        "currency": session.currency,
        "metadata": session.metadata,
        "status": "succeeded",
        "created": int(completes_at.timestamp()),
        "livemode": False,
    }
    events = [_event("checkout.session.completed", completed, created=completes_at), _event("payment_intent.succeeded", intent, created=completes_at)]
    if rng.random() < config.out_of_order_rate:
        events.reverse()
    rows = []
    for offset, payload in enumerate(events):
        when = completes_at + dt.timedelta(milliseconds=100 * offset) + dt.timedelta(seconds=config.webhook_delay_seconds)
        rows.append(SimulatedDelivery(vendor=VENDOR, event=payload["type"], reference=session.session_id, payload=payload, due_at=when))
        if rng.random() < config.duplicate_rate:
            rows.append(
                SimulatedDelivery(
                    vendor=VENDOR, event=payload["type"], reference=session.session_id, payload=payload,
                    due_at=when + dt.timedelta(milliseconds=200), is_duplicate=True,
                )
            )  # fmt: skip
    SimulatedDelivery.objects.bulk_create(rows)
    return "paying"


# --- The sandbox clients, who open the links they are texted ------------------------------------

_PAY_LINK = re.compile(r"https?://[^\s]+?(/pay/[A-Za-z0-9_\-:.]+/)")


def link_opens_schedule(*, text: str, message_id: int, now: dt.datetime) -> int:
    """For a text carrying a payment link, maybe (`stripe_open_rate`, seeded by message) have the
    client open it after `stripe_open_delay_seconds`. Returns how many opens were scheduled."""
    match = _PAY_LINK.search(text)
    if match is None:
        return 0
    config = SimulatorConfig.load()
    rng = random.Random(f"{config.seed}:{message_id}:link-open")
    if rng.random() >= config.stripe_open_rate:
        return 0
    delay = _real(config, config.stripe_open_delay_seconds * rng.uniform(0.5, 1.5))
    SimulatedDelivery.objects.create(
        vendor="client", event="link_open", reference=str(message_id), payload={"path": match.group(1)}, due_at=now + delay
    )
    return 1
