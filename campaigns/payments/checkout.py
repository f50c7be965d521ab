"""Opening a payment link: `/pay/<token>/` → a live Checkout Session of the account's amount.

The token says whose link it is and what for (links.py). Each open is recorded on the account's
`PaymentLink` for that purpose; a session still open is reused, an expired one replaced by a new
session. The session is made outside any transaction, with an idempotency key that names the
account, the purpose and how many sessions came before: a retry after Stripe timed out gets the
session the first try made, never a second one. When Stripe is down or slow the client gets a
page asking to try again in a minute, and nothing is lost: the link stays valid and the next open
makes the session.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from campaigns.alerts import alert_raise
from campaigns.models import Account, PaymentLink, PromiseToPay, QueueItem
from campaigns.payments import links
from integrations import modes
from integrations.http import IntegrationError
from integrations.stripe import client as stripe

log = logging.getLogger(__name__)

# A session about to expire is not handed out: the client needs a few minutes on the page.
MIN_REMAINING = dt.timedelta(minutes=5)


class NothingDue(Exception):
    """The account owes nothing (paid already, or no amount known)."""


class ProviderUnavailable(Exception):
    """The payment provider did not answer in time; the client should try again shortly."""


class ProviderRefused(Exception):
    """The payment provider refused the session for good (its answer says why); staff are alerted."""


class AmountUnknown(Exception):
    """The account has no amount due on record: there is nothing to put on a payment page."""


@dataclass(frozen=True)
class Opened:
    url: str
    link: PaymentLink | None
    reused: bool


def _amount(*, account: Account, claim: links.LinkClaim) -> tuple[Decimal, PromiseToPay | None]:
    if account.status == Account.Status.RESOLVED:
        raise NothingDue("Nothing is due on this account.")
    if account.amount_due is None:
        raise AmountUnknown("The warehouse gave no amount due for this account.")
    due = account.amount_due
    if due <= 0:
        raise NothingDue("Nothing is due on this account.")
    promise = None
    if claim.purpose == links.PROMISE and claim.promise_id is not None:
        promise = PromiseToPay.objects.filter(
            pk=claim.promise_id, client_id=account.client_id, status__in=[PromiseToPay.Status.PENDING, PromiseToPay.Status.PARTLY_KEPT]
        ).first()
    if promise is not None and promise.amount:
        left = promise.amount - (promise.amount_recovered or Decimal("0"))
        if left > 0:
            return min(left, due), promise
    return due, promise


def _phase(account: Account) -> str:
    return QueueItem.objects.filter(client_id=account.client_id).order_by("-created_at").values_list("phase", flat=True).first() or ""


def open_sessions_expire(*, client_id: str, keep_session_id: str = "") -> int:
    """Close the client's other open Checkout Sessions at Stripe, so none of them can be paid
    after a payment (or after a newer session for another amount replaced them): a client with
    two tabs open, or who paid by phone meanwhile, is never charged twice. Returns how many were
    closed; one Stripe refuses (already paid, already expired) is marked expired here all the same."""
    if not (modes.is_live(stripe.VENDOR) or modes.sandbox_enabled()):
        return 0
    links_open = PaymentLink.objects.filter(client_id=client_id, status=PaymentLink.Status.OPEN).exclude(session_id=keep_session_id)
    closed = 0
    for link in links_open:
        try:
            stripe.checkout_session_expire(link.session_id)
        except IntegrationError as exc:
            if not exc.permanent:
                # Stripe is away: the session stays open here, so the next payment or open tries again.
                log.warning("checkout session not expired", extra={"client_id": client_id, "session_id": link.session_id, "error": str(exc)[:200]})
                continue
        closed += PaymentLink.objects.filter(pk=link.pk, status=PaymentLink.Status.OPEN).update(status=PaymentLink.Status.EXPIRED)
    return closed


def _record_open(link: PaymentLink, *, now: dt.datetime) -> None:
    PaymentLink.objects.filter(pk=link.pk).update(opens=F("opens") + 1, last_opened_at=now)
    PaymentLink.objects.filter(pk=link.pk, first_opened_at__isnull=True).update(first_opened_at=now)


def payment_link_open(*, claim: links.LinkClaim, now: dt.datetime) -> Opened:
    """Where a verified link should send the client; records the open.

    Raises NothingDue, ProviderUnavailable, or Account.DoesNotExist.
    """
    account = Account.objects.select_related("segment").get(client_id=claim.client_id)
    amount, promise = _amount(account=account, claim=claim)
    if not (modes.is_live(stripe.VENDOR) or modes.sandbox_enabled()):
        # No payment provider here: the warehouse's own https link, if it gave one.
        if account.payment_link.lower().startswith("https://"):
            return Opened(url=account.payment_link, link=None, reused=False)
        raise ProviderUnavailable("No payment provider is configured.")
    wall = timezone.now()  # Stripe checks expiry against its own (real) clock, not the campaign's
    live = (
        PaymentLink.objects.filter(
            client_id=account.client_id, purpose=claim.purpose, promise=promise, status=PaymentLink.Status.OPEN,
            expires_at__gt=wall + MIN_REMAINING, amount=amount,
        )
        .order_by("-created_at")
        .first()
    )  # fmt: skip
    if live is not None:
        _record_open(live, now=now)
        return Opened(url=live.session_url, link=live, reused=True)
    # Sessions of this purpose that can no longer be used (expired, or for another amount): closed
    # at Stripe too, so only the new one can be paid.
    stale = PaymentLink.objects.filter(client_id=account.client_id, purpose=claim.purpose, promise=promise, status=PaymentLink.Status.OPEN)
    for old in stale:
        if old.expires_at > wall:
            try:
                stripe.checkout_session_expire(old.session_id)
            except IntegrationError as exc:
                log.warning("checkout session not expired", extra={"client_id": account.client_id, "session_id": old.session_id, "error": str(exc)[:200]})
    stale.update(status=PaymentLink.Status.EXPIRED)
    generation = PaymentLink.objects.filter(client_id=account.client_id, purpose=claim.purpose, promise=promise).count()
    metadata = {"client_id": account.client_id, "purpose": claim.purpose}
    if promise is not None:
        metadata["promise_id"] = str(promise.pk)
    if claim.call_id:
        metadata["call_id"] = claim.call_id
    # A retry after a lost answer must send Stripe the very same request (it refuses a reused
    # idempotency key with other parameters): the expiry is counted from a five-minute bucket,
    # which the key names, so the same open within the bucket is one session and a later one a
    # new request. Stripe wants 30 minutes to 24 hours from now.
    bucket = wall.replace(minute=wall.minute - wall.minute % 5, second=0, microsecond=0)
    expires_at = bucket + dt.timedelta(minutes=min(max(settings.STRIPE_SESSION_MINUTES, 35), 24 * 60))
    try:
        session = stripe.checkout_session_create(
            client_id=account.client_id,
            amount=amount,
            description=("Payment arranged" if promise is not None else "Past-due balance") + f" — account {account.client_id}",
            metadata=metadata,
            expires_at=expires_at,
            idempotency_key=f"paylink:{account.client_id}:{claim.purpose}:{promise.pk if promise else 0}:{generation}:{amount}:{bucket:%Y%m%d%H%M}",
            customer_email=account.email,
        )
    except IntegrationError as exc:
        if exc.permanent:
            # An answer, not an outage (an address Stripe refuses, an amount below its minimum):
            # retrying would not help, and someone has to look.
            log.error("payment link not opened: stripe refused", extra={"client_id": account.client_id, "error": str(exc)[:200]})
            alert_raise(
                campaign=None, source="stripe",
                message=f"Stripe refused a payment page for client {account.client_id}: {str(exc)[:300]}",
            )  # fmt: skip
            raise ProviderRefused(str(exc)) from exc
        log.warning("payment link not opened: stripe unavailable", extra={"client_id": account.client_id, "error": str(exc)[:200]})
        raise ProviderUnavailable(str(exc)) from exc
    try:
        with transaction.atomic():
            link, _ = PaymentLink.objects.get_or_create(
                session_id=session.id,
                defaults={
                    "account": account, "client_id": account.client_id, "purpose": claim.purpose, "promise": promise,
                    "call_id": claim.call_id, "amount": amount, "currency": settings.STRIPE_CURRENCY[:3],
                    "session_url": session.url, "expires_at": session.expires_at,
                    "segment_name": account.segment.name if account.segment is not None else "", "phase": _phase(account),
                    "owner": account.owner, "created_at": now,
                },
            )  # fmt: skip
    except IntegrityError:
        link = PaymentLink.objects.get(session_id=session.id)
    _record_open(link, now=now)
    log.info("payment link opened: new checkout session", extra={"client_id": account.client_id, "purpose": claim.purpose})
    return Opened(url=session.url, link=link, reused=False)
