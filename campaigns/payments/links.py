"""Secure payment links: the only way a text or a call ever lets a client pay.

Card numbers are never collected or stored (seed 002: "never collect card details"); a client
pays on the payment provider's hosted page. Every link the portal sends — in a text, as a call's
`payment_link` variable, mid-call — is its own short signed URL, `/pay/<code>/`
(`settings.PAYMENT_LINK_TEMPLATE`): a random code with a signature of its own, stored with what
it names — the client, the purpose (the balance or a promise), the call it was sent from — and
its expiry (`PayLinkCode`). Opening it (`campaigns.payments.checkout`) records the open and
redirects to a live Checkout Session.

Links sent before codes existed carry the whole claim as a signed token
(`payment_link_token`); `/pay/` still honours those until they expire.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import string
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from campaigns.models import Account, PayLinkCode, PromiseToPay
from integrations import clock

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


BALANCE = "balance"
PROMISE = "promise"
PURPOSES = (BALANCE, PROMISE)


@dataclass(frozen=True)
class LinkClaim:
    """What a verified token says: whose link, what for, sent from which call."""

    client_id: str
    purpose: str = BALANCE
    promise_id: int | None = None
    call_id: str = ""


def payment_link_token(
    *, client_id: str, now: dt.datetime, purpose: str = BALANCE, promise_id: int | None = None, call_id: str = ""
) -> str:
    """A URL-safe token naming `client_id` (and what the link is for), signed now and valid for
    the configured age. Compressed and with short keys: the link goes into a text."""
    if not client_id:
        raise ValueError("A payment link needs a client id.")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown payment link purpose {purpose!r}")
    claim: dict[str, object] = {"client_id": client_id}
    if purpose != BALANCE:
        claim["p"] = purpose
    if promise_id is not None:
        claim["r"] = promise_id
    if call_id:
        claim["k"] = call_id
    return _ClockedSigner(now=now).sign_object(claim, compress=True)


def payment_link_claim(*, token: str, now: dt.datetime, max_age: dt.timedelta | None = None) -> LinkClaim:
    """What a link's code (or older signed token) was issued for; PaymentLinkError if forged,
    malformed or expired."""
    if is_short_code(token):
        return _code_claim(code=token, now=now)
    client_id = payment_link_verify(token=token, now=now, max_age=max_age)
    payload = _ClockedSigner(now=now).unsign_object(token, max_age=None)
    purpose = payload.get("p", BALANCE)
    promise_id = payload.get("r")
    call_id = payload.get("k", "")
    if purpose not in PURPOSES or not (promise_id is None or isinstance(promise_id, int)) or not isinstance(call_id, str):
        raise PaymentLinkError("This payment link is not valid.")
    return LinkClaim(client_id=client_id, purpose=purpose, promise_id=promise_id, call_id=call_id)


def payment_link_verify(*, token: str, now: dt.datetime, max_age: dt.timedelta | None = None) -> str:
    """The client id a code or token was issued for; PaymentLinkError if forged, malformed or expired."""
    if is_short_code(token):
        return _code_claim(code=token, now=now).client_id
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


# --- Short codes --------------------------------------------------------------------------------

_ALPHABET = string.digits + string.ascii_letters
CODE_RANDOM = 10  # 62**10 ≈ 8e17 codes: not guessable, and every one is checked against its row
CODE_SIGNATURE = 6
CODE_LENGTH = CODE_RANDOM + CODE_SIGNATURE
_CODE = re.compile(rf"[0-9A-Za-z]{{{CODE_LENGTH}}}")
# The same claim issued again within this reuses its code, so a day of texts and calls to one
# client does not mint a code per message.
CODE_REUSE = dt.timedelta(days=1)


def _code_signature(random_part: str) -> str:
    digest = int.from_bytes(salted_hmac(SALT + ".code", random_part).digest()[:8], "big")
    return signing.b62_encode(digest).rjust(CODE_SIGNATURE, "0")[:CODE_SIGNATURE]


def _new_code() -> str:
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_RANDOM))
    return random_part + _code_signature(random_part)


def is_short_code(token: str) -> bool:
    return bool(_CODE.fullmatch(token))


def payment_link_code(
    *, client_id: str, now: dt.datetime, purpose: str = BALANCE, promise_id: int | None = None, call_id: str = ""
) -> str:
    """The short code for this claim: the one issued for it within the last day, or a new one
    valid for the configured age."""
    if not client_id:
        raise ValueError("A payment link needs a client id.")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown payment link purpose {purpose!r}")
    claim = {"client_id": client_id, "purpose": purpose, "promise_id": promise_id, "call_id": call_id}
    reusable = (
        PayLinkCode.objects.filter(**claim, issued_at__gt=now - CODE_REUSE, issued_at__lte=now + CLOCK_SKEW)
        .order_by("-issued_at")
        .values_list("code", flat=True)
        .first()
    )
    if reusable:
        return reusable
    code = _new_code()
    PayLinkCode.objects.create(code=code, issued_at=now, expires_at=now + payment_link_max_age(), **claim)
    return code


def _code_claim(*, code: str, now: dt.datetime) -> LinkClaim:
    if not constant_time_compare(code[CODE_RANDOM:], _code_signature(code[:CODE_RANDOM])):
        raise PaymentLinkError("This payment link is not valid.")
    row = PayLinkCode.objects.filter(code=code).first()
    if row is None:
        raise PaymentLinkError("This payment link is not valid.")
    if row.expires_at <= now:
        raise PaymentLinkError("This payment link has expired.", expired=True)
    return LinkClaim(client_id=row.client_id, purpose=row.purpose, promise_id=row.promise_id, call_id=row.call_id)


def link_url(token: str) -> str:
    # str.replace, not str.format: a template may legitimately contain other braces.
    return settings.PAYMENT_LINK_TEMPLATE.replace("{token}", token)


def example_link() -> str:
    """A link exactly as long as the ones we send, without issuing one: for length previews."""
    return link_url("x" * CODE_LENGTH)


def secure_link_for(
    *, client_id: str, now: dt.datetime, purpose: str = BALANCE, promise_id: int | None = None, call_id: str = ""
) -> str:
    """Our short signed link for `client_id` (`/pay/<code>/`)."""
    return link_url(payment_link_code(client_id=client_id, now=now, purpose=purpose, promise_id=promise_id, call_id=call_id))


def secure_link(account: Account, purpose: str = BALANCE, call_id: str | None = None, *, promise_id: int | None = None) -> str:
    """The payment link to send `account` — by text, as a call variable or mid-call.

    `purpose` is "balance" (the amount due) or "promise" (the amount of `promise_id`, or of the
    account's latest pending promise); `call_id` names the call it is sent from, so the payment
    is credited to it.
    """
    if purpose == PROMISE and promise_id is None:
        promise_id = (
            PromiseToPay.objects.filter(client_id=account.client_id, status=PromiseToPay.Status.PENDING)
            .order_by("-created_at")
            .values_list("pk", flat=True)
            .first()
        )
    return secure_link_for(client_id=account.client_id, now=clock.now(), purpose=purpose, promise_id=promise_id, call_id=call_id or "")


def payment_link_for(*, client_id: str, row_link: str, now: dt.datetime, call_id: str = "") -> str:
    """The link a text or a call carries: always our own signed link. A warehouse link
    (`row_link`) is not sent: `/pay/` redirects to it only where no payment provider is set up."""
    return secure_link_for(client_id=client_id, now=now, call_id=call_id)
