"""Secure payment links: the only way a text or a call ever lets a client pay.

Card numbers are never collected or stored (seed 002: "never collect card details"); a client
pays on the payment provider's page behind a link. The warehouse may supply a link per client
(`payment_link` column); otherwise the link is built from `settings.PAYMENT_LINK_TEMPLATE`
with `{token}` replaced by a signed, expiring token naming the client, which the payment page
(or anything that serves it) checks with `payment_link_verify`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.core import signing

log = logging.getLogger(__name__)

# A distinct salt so a token signed for payment links is worthless anywhere else that signs
# with the same SECRET_KEY (sessions, password resets, ...).
SALT = "billing_dialer.payment_link"
# Tolerated clock difference between the host that signed a token and the host checking it.
CLOCK_SKEW = dt.timedelta(minutes=5)


class PaymentLinkError(Exception):
    """A payment-link token that is malformed, forged or expired."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class _ClockedSigner(signing.TimestampSigner):
    """TimestampSigner reading an explicit clock, so issuing and expiry are testable."""

    def __init__(self, *, now: dt.datetime) -> None:
        super().__init__(salt=SALT)
        self._now = now

    def timestamp(self) -> str:
        return signing.b62_encode(int(self._now.timestamp()))

    def unsign(self, value: str, max_age: float | dt.timedelta | None = None) -> str:
        # Signature first (Signer.unsign), then the age against our clock, not time.time().
        signed = signing.Signer.unsign(self, value)
        payload, timestamp = signed.rsplit(self.sep, 1)
        try:
            issued = signing.b62_decode(timestamp)
        except ValueError as exc:  # signed by us, so only a changed SECRET_KEY layout gets here
            raise signing.BadSignature("unreadable timestamp") from exc
        age = self._now.timestamp() - issued
        if age < -CLOCK_SKEW.total_seconds():
            raise signing.BadSignature("token issued in the future")
        if max_age is not None:
            limit = max_age.total_seconds() if isinstance(max_age, dt.timedelta) else float(max_age)
            if age > limit:
                raise signing.SignatureExpired(f"token is {age:.0f} s old, limit {limit:.0f} s")
        return payload


def payment_link_max_age() -> dt.timedelta:
    return dt.timedelta(days=settings.PAYMENT_LINK_MAX_AGE_DAYS)


def payment_link_token(*, client_id: str, now: dt.datetime) -> str:
    """A URL-safe token naming `client_id`, signed now and valid for the configured age."""
    if not client_id:
        raise ValueError("A payment link needs a client id.")
    return _ClockedSigner(now=now).sign_object({"client_id": client_id})


def payment_link_verify(*, token: str, now: dt.datetime, max_age: dt.timedelta | None = None) -> str:
    """The client id a token was issued for; PaymentLinkError if forged, malformed or expired."""
    try:
        payload = _ClockedSigner(now=now).unsign_object(token, max_age=max_age or payment_link_max_age())
    except signing.SignatureExpired as exc:
        raise PaymentLinkError("This payment link has expired.", expired=True) from exc
    except (signing.BadSignature, ValueError) as exc:
        # ValueError covers base64/JSON that passed the signature only in theory; never trust it.
        raise PaymentLinkError("This payment link is not valid.") from exc
    client_id = payload.get("client_id") if isinstance(payload, dict) else None
    if not isinstance(client_id, str) or not client_id:
        raise PaymentLinkError("This payment link is not valid.")
    return client_id


def payment_link_for(*, client_id: str, row_link: str, now: dt.datetime) -> str:
    """The link a text carries: the warehouse's own secure link, else a signed one of ours.

    A warehouse link that is not https is not a secure payment path, so it is replaced by ours
    (and logged, so the data owner can fix the column).
    """
    row_link = (row_link or "").strip()
    if row_link:
        if row_link.lower().startswith("https://"):
            return row_link
        log.warning("payment link ignored: not https", extra={"client_id": client_id})
    token = payment_link_token(client_id=client_id, now=now)
    # str.replace, not str.format: a template may legitimately contain other braces.
    return settings.PAYMENT_LINK_TEMPLATE.replace("{token}", token)


def link_for(*, account: Any, purpose: str = "balance", call_id: str = "", now: dt.datetime) -> str:
    """The one place a call's payment link comes from (Grace's `send_payment_link`).

    Today it is `payment_link_for` on the account's warehouse link; `purpose` and `call_id` say
    what the link is for and which call asked, for a link that records them.
    """
    del purpose, call_id  # not carried by the current link
    return payment_link_for(client_id=account.client_id, row_link=account.payment_link, now=now)
