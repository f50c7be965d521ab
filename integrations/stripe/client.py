"""Stripe: Checkout Sessions behind the payment links, and the signature check of its webhooks.

Through the official `stripe` library. Live when STRIPE_API_KEY is set; otherwise the simulator
this project serves at SANDBOX_APP_URL + "/sandbox/stripe" (only while SANDBOX_ENABLED), reached
by the very same library with its API base pointed there. Card data never passes through us:
the client pays on the session's hosted page.

Reference: https://docs.stripe.com/api/checkout/sessions/create
Reference: https://docs.stripe.com/api/checkout/sessions/retrieve
Reference: https://docs.stripe.com/webhooks#verify-events
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping, cast

import requests
import stripe
from django.conf import settings

from integrations import modes
from integrations.http import IntegrationError

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams

log = logging.getLogger(__name__)

VENDOR = "stripe"
SANDBOX_PATH = "/sandbox/stripe"
SIGNATURE_HEADER = "Stripe-Signature"
# Stripe's own default tolerance for a signed timestamp, stated so nobody changes it unawares.
SIGNATURE_TOLERANCE_SECONDS = 300
# A client waits on our /pay/ page while the session is made: a short read timeout, so a slow
# Stripe gives them the "try again" page in seconds rather than a spinning browser.
TIMEOUT: tuple[float, float] = (3.05, 8.0)
# The library retries connection errors and 409/429/5xx with the idempotency key it sends.
MAX_NETWORK_RETRIES = 2

_local = threading.local()


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    status: str  # open | complete | expired
    payment_status: str  # paid | unpaid | no_payment_required
    expires_at: dt.datetime
    payment_intent: str


def base_url() -> str:
    if modes.is_live(VENDOR):
        return "https://api.stripe.com"
    return settings.SANDBOX_APP_URL.rstrip("/") + SANDBOX_PATH


def api_key() -> str:
    return settings.STRIPE_API_KEY if modes.is_live(VENDOR) else settings.STRIPE_SANDBOX_KEY


def webhook_secret() -> str:
    """The signing secret events are checked with: STRIPE_WEBHOOK_SECRET live, the sandbox's own
    while Stripe is simulated, none otherwise (every signature refused: the sandbox secret is in
    the source and must open nothing in production)."""
    if modes.is_live(VENDOR):
        return str(settings.STRIPE_WEBHOOK_SECRET)
    return str(settings.STRIPE_SANDBOX_WEBHOOK_SECRET) if modes.sandbox_enabled() else ""


def _client() -> stripe.StripeClient:
    modes.simulator_required(VENDOR, credentials="STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET")
    key = (api_key(), base_url())
    cached = getattr(_local, "client", None)
    if cached is None or cached[0] != key:
        client = stripe.StripeClient(
            key[0],
            base_addresses={"api": key[1]},
            http_client=stripe.RequestsClient(timeout=TIMEOUT, session=requests.Session()),
            max_network_retries=MAX_NETWORK_RETRIES,
        )
        cached = (key, client)
        _local.client = cached
    return cached[1]


def _error(exc: stripe.StripeError, *, action: str) -> IntegrationError:
    status = exc.http_status
    transient = isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)) or status is None or status >= 500
    return IntegrationError(
        f"{action}: {exc.user_message or exc.__class__.__name__}"[:300],
        permanent=not transient,
        vendor=VENDOR,
        status=status,
        request_id=exc.request_id or "",
    )


def _session_from(resource: Any) -> CheckoutSession:
    obj: dict[str, Any] = resource.to_dict() if isinstance(resource, stripe.StripeObject) else dict(resource)
    payment_intent = obj.get("payment_intent")
    if isinstance(payment_intent, Mapping):
        payment_intent = payment_intent.get("id")
    return CheckoutSession(
        id=str(obj["id"]),
        url=str(obj.get("url") or ""),
        status=str(obj.get("status") or ""),
        payment_status=str(obj.get("payment_status") or ""),
        expires_at=dt.datetime.fromtimestamp(int(obj.get("expires_at") or 0), tz=dt.timezone.utc),
        payment_intent=str(payment_intent or ""),
    )


def amount_in_cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal("1")))


def checkout_session_create(
    *,
    client_id: str,
    amount: Decimal,
    description: str,
    metadata: Mapping[str, str],
    expires_at: dt.datetime,
    idempotency_key: str,
    customer_email: str = "",
) -> CheckoutSession:
    """One hosted Checkout Session for `amount` (a one-off line item), named by the client id."""
    params: dict[str, Any] = {
        "mode": "payment",
        "client_reference_id": client_id,
        "metadata": dict(metadata),
        # The PaymentIntent carries the same metadata, so payment_intent.succeeded names the client too.
        "payment_intent_data": {"metadata": dict(metadata)},
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": settings.STRIPE_CURRENCY,
                    "unit_amount": amount_in_cents(amount),
                    "product_data": {"name": description[:250]},
                },
            }
        ],
        "expires_at": int(expires_at.timestamp()),
        "success_url": settings.STRIPE_SUCCESS_URL,
        "cancel_url": settings.STRIPE_CANCEL_URL,
    }
    if customer_email:
        params["customer_email"] = customer_email
    try:
        session = _client().v1.checkout.sessions.create(cast("SessionCreateParams", params), {"idempotency_key": idempotency_key})
    except stripe.StripeError as exc:
        raise _error(exc, action="checkout session not created") from exc
    return _session_from(session)


def checkout_session_retrieve(session_id: str) -> CheckoutSession:
    try:
        session = _client().v1.checkout.sessions.retrieve(session_id)
    except stripe.StripeError as exc:
        raise _error(exc, action="checkout session not read") from exc
    return _session_from(session)


def checkout_session_expire(session_id: str) -> CheckoutSession:
    """Close an open session at Stripe, so it can no longer be paid (Stripe refuses a paid one)."""
    try:
        session = _client().v1.checkout.sessions.expire(session_id)
    except stripe.StripeError as exc:
        raise _error(exc, action="checkout session not expired") from exc
    return _session_from(session)


class SignatureError(ValueError):
    """A Stripe-Signature that is missing, malformed, wrong or outside the tolerance."""


def event_verify(payload: bytes, header: str | None) -> dict[str, Any]:
    """The event of a signed webhook body, checked by the library (`SignatureError` otherwise)."""
    try:
        event = stripe.Webhook.construct_event(
            payload, header, webhook_secret(), tolerance=SIGNATURE_TOLERANCE_SECONDS, api_key=api_key()
        )
    except stripe.SignatureVerificationError as exc:
        raise SignatureError(str(exc)) from exc
    except (ValueError, UnicodeDecodeError) as exc:  # signed, but not a JSON event
        raise SignatureError(f"not an event: {exc}") from exc
    return dict(event.to_dict())


def signature_header(payload: str, *, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header for `payload`, by the library's own scheme (the simulator signs with it)."""
    return str(stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp))
