"""What a payment does: recorded once, and within seconds it settles the account, the promise and
the day's outreach to that client.

`payment_record` is the one write path for every source (Stripe events, the warehouse payments
query). The payment's reference (Stripe: the PaymentIntent id) is unique, so the same payment
named by two events, two deliveries of one event, or by Stripe and the warehouse, counts once.
In the transaction that inserts it:

- the account's balance goes down by the amount and, once nothing is due, its status is resolved;
- the earliest pending promise due on or after the payment date is kept when the payment covers
  it (within `settings.PROMISE_KEPT_TOLERANCE`), partly kept otherwise (a later payment can still
  make it kept);
- the client's touchpoints still waiting in today's queue are skipped with the reason `paid`
  (calls not yet released, texts not yet sent), and the compliance gate blocks any that a worker
  claimed meanwhile (rule `paid`);
- a payment naming no known client is kept and opens a low-confidence-match task.

Money can also go back (`payment_reverse`): a refund (`charge.refunded`, whose
`amount_refunded` is cumulative) or a card dispute (`charge.dispute.*`: the disputed amount is
held while the dispute is open and lost when it is lost; a won dispute gives it back). The
payment keeps its row; what it recovers is its amount less both, the account's balance is due
again by the difference, a promise it kept is reopened as far as it is no longer covered, and a
follow-up task says what happened.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from cadences.models import team_for_phase
from campaigns.models import (
    FOLLOW_UP_DUE,
    Account,
    Campaign,
    ContactLedgerEntry,
    FollowUpTask,
    Payment,
    PaymentLink,
    PromiseToPay,
    QueueItem,
)
from campaigns.payments import checkout
from campaigns.transitions import queue_item_transition
from integrations import clock

log = logging.getLogger(__name__)

PAID = "paid"
CENT = Decimal("0.01")


@dataclass(frozen=True)
class PaymentRecorded:
    payment: Payment
    created: bool
    promise_status: str = ""
    items_skipped: int = 0


def _tolerance() -> Decimal:
    try:
        return Decimal(str(settings.PROMISE_KEPT_TOLERANCE))
    except (InvalidOperation, ValueError):
        return Decimal("0")


def _days_past_due(account: Account, *, on: dt.date) -> int | None:
    """Days past due on `on`: the warehouse's figure as of the account's last load, aged since."""
    if account.days_past_due is None:
        return None
    seen = timezone.localdate(account.last_seen_at)
    return max(account.days_past_due + (on - seen).days, 0)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _first_contact_date(client_id: str) -> dt.date | None:
    first = ContactLedgerEntry.objects.filter(client_id=client_id).aggregate(first=Min("occurred_at"))["first"]
    return timezone.localdate(first) if first else None


def _promise_apply(*, client_id: str, amount: Decimal, paid_on: dt.date, now: dt.datetime) -> tuple[PromiseToPay | None, str]:
    promise = (
        PromiseToPay.objects.select_for_update()
        .filter(client_id=client_id, status__in=[PromiseToPay.Status.PENDING, PromiseToPay.Status.PARTLY_KEPT], promised_date__gte=paid_on)
        .order_by("promised_date", "pk")
        .first()
    )
    if promise is None:
        return None, ""
    recovered = (promise.amount_recovered or Decimal("0")) + amount
    covered = promise.amount is None or recovered >= promise.amount - _tolerance()
    status = PromiseToPay.Status.KEPT if covered else PromiseToPay.Status.PARTLY_KEPT
    PromiseToPay.objects.filter(pk=promise.pk).update(status=status, amount_recovered=recovered, resolved_at=now)
    return promise, str(status)


def outreach_skip_paid(*, client_id: str, reference: str, now: dt.datetime) -> int:
    """Skip the client's touchpoints still waiting in an active campaign (reason `paid`)."""
    active = [Campaign.Status.LOADING, Campaign.Status.RUNNING, Campaign.Status.PAUSED, Campaign.Status.STOPPING]
    items = QueueItem.objects.filter(client_id=client_id, campaign__status__in=active)
    detail = {"payment_reference": reference, "at": now.isoformat()}
    skipped = 0
    for item_id in items.filter(status__in=[QueueItem.Status.QUEUED, QueueItem.Status.SMS_SCHEDULED]).values_list("pk", flat=True):
        skipped += queue_item_transition(
            item_id=item_id,
            from_statuses=[QueueItem.Status.QUEUED, QueueItem.Status.SMS_SCHEDULED],
            to_status=QueueItem.Status.SKIPPED,
            skip_reason=PAID,
            skip_detail=detail,
        )
    # Texts that have not gone out yet (the touchpoint's, or a call's follow-up) are skipped; one
    # already sent stays sent, so the day's text counters keep agreeing with the items.
    items.filter(sms_status__in=[QueueItem.SmsStatus.PENDING, QueueItem.SmsStatus.SCHEDULED]).update(
        sms_status=QueueItem.SmsStatus.SKIPPED
    )
    return skipped


def _amount(value: Any) -> Decimal:
    amount = Decimal(str(value)).quantize(CENT)
    if not amount.is_finite() or amount <= 0:
        raise ValueError("a payment amount must be positive")
    return amount


def payment_record(
    *,
    client_id: str,
    amount: Decimal | str | float,
    reference: str,
    paid_at: dt.datetime,
    source: str,
    now: dt.datetime,
    session_id: str = "",
    call_id: str = "",
    currency: str = "usd",
) -> PaymentRecorded:
    """Record one payment and everything it settles; a reference seen before changes nothing
    (except linking a session an earlier event of the same payment did not name)."""
    if not reference:
        raise ValueError("a payment needs a reference")
    value = _amount(amount)
    reference = reference[:255]
    link = PaymentLink.objects.filter(session_id=session_id).first() if session_id else None
    with transaction.atomic():
        existing = Payment.objects.filter(reference=reference).first()
        if existing is not None:
            if link is not None and existing.link_id is None:
                Payment.objects.filter(pk=existing.pk).update(link=link)
            _link_complete(link, now=now)
            return PaymentRecorded(payment=existing, created=False)
        account = Account.objects.select_for_update().filter(client_id=client_id).first() if client_id else None
        # The day the client paid, as the client counts days: a promise "by the 20th" made in the
        # client's own zone is kept by a payment at 21:30 there on the 20th.
        zones = account.timezone_list if account is not None else []
        paid_on = timezone.localdate(paid_at, _zone(zones[0]) if zones else None)
        payment = Payment(
            account=account,
            client_id=client_id[:64],
            amount=value,
            currency=currency[:3] or "usd",
            source=source,
            reference=reference,
            paid_at=paid_at,
            link=link,
            call_id=(call_id or (link.call_id if link else ""))[:100],
        )
        if account is not None:
            first_contact = _first_contact_date(account.client_id)
            dpd = _days_past_due(account, on=paid_on)
            payment.segment_name = account.segment.name if account.segment is not None else ""
            payment.phase = link.phase if link else ""
            payment.owner = account.owner
            payment.days_past_due = dpd
            if dpd is not None and first_contact is not None:
                payment.days_past_due_at_first_contact = max(dpd - (paid_on - first_contact).days, 0)
            balance = max((account.amount_due or Decimal("0")) - value, Decimal("0"))
            payment.balance_after = balance
        try:
            with transaction.atomic():
                payment.save()
        except IntegrityError:
            # The same payment, recorded by a concurrent event a moment ago.
            return PaymentRecorded(payment=Payment.objects.get(reference=reference), created=False)
        promise_status = ""
        skipped = 0
        if account is None:
            FollowUpTask.objects.get_or_create(
                kind=FollowUpTask.Kind.LOW_CONFIDENCE_MATCH,
                source_ref=f"payment:{reference}"[:100],
                defaults={
                    "client_id": client_id[:64],
                    "due_at": now + FOLLOW_UP_DUE[FollowUpTask.Kind.LOW_CONFIDENCE_MATCH],
                    "detail": f"A {source} payment of ${value:,.2f} ({reference}) names client {client_id or '(none)'}, "
                    "which is no account of ours: match it by hand.",
                },
            )
        else:
            account_fields: dict[str, Any] = {"amount_due": payment.balance_after}
            if payment.balance_after is not None and payment.balance_after <= 0:
                account_fields["status"] = Account.Status.RESOLVED
            Account.objects.filter(pk=account.pk).update(**account_fields)
            promise, promise_status = _promise_apply(client_id=account.client_id, amount=value, paid_on=paid_on, now=now)
            if promise is not None:
                Payment.objects.filter(pk=payment.pk).update(promise=promise)
                if not payment.phase:
                    Payment.objects.filter(pk=payment.pk).update(phase=promise.phase)
            skipped = outreach_skip_paid(client_id=account.client_id, reference=reference, now=now)
            # Once committed, and outside the transaction (it calls Stripe): the client's other
            # open payment pages are closed, so this payment is not made twice.
            paid_client = account.client_id
            transaction.on_commit(lambda: _other_sessions_expire(client_id=paid_client, keep_session_id=session_id))
        _link_complete(link, now=now)
    log.info(
        "payment recorded",
        extra={"client_id": client_id, "source": source, "reference": reference, "promise": promise_status, "skipped": skipped, "matched": account is not None},
    )
    return PaymentRecorded(payment=payment, created=True, promise_status=promise_status, items_skipped=skipped)


def _other_sessions_expire(*, client_id: str, keep_session_id: str) -> None:
    try:
        checkout.open_sessions_expire(client_id=client_id, keep_session_id=keep_session_id)
    except Exception:  # the payment is recorded: closing the other pages must never undo or fail it
        log.exception("closing the client's other payment pages failed", extra={"client_id": client_id})


def _link_complete(link: PaymentLink | None, *, now: dt.datetime) -> None:
    if link is not None:
        PaymentLink.objects.filter(pk=link.pk).exclude(status=PaymentLink.Status.COMPLETE).update(
            status=PaymentLink.Status.COMPLETE, completed_at=now
        )


# --- Money that goes back ------------------------------------------------------------------------


class PaymentNotYetKnown(LookupError):
    """A refund or dispute names a payment we have not recorded yet (its events came out of
    order): the event stays unprocessed and is retried."""

    retry_later = True


@dataclass(frozen=True)
class PaymentReversed:
    payment: Payment
    balance_restored: Decimal
    promise_status: str = ""


def _reopen_promise(*, promise_id: int | None, lost: Decimal, now: dt.datetime) -> str:
    """Take `lost` off what the promise recovered and settle it again; its new status."""
    if promise_id is None or lost <= 0:
        return ""
    promise = PromiseToPay.objects.select_for_update().filter(pk=promise_id).first()
    if promise is None or promise.status not in (PromiseToPay.Status.KEPT, PromiseToPay.Status.PARTLY_KEPT):
        return ""
    recovered = max((promise.amount_recovered or Decimal("0")) - lost, Decimal("0"))
    if promise.amount is None or recovered >= promise.amount - _tolerance():
        status = PromiseToPay.Status.KEPT if recovered > 0 else PromiseToPay.Status.PENDING
    else:
        status = PromiseToPay.Status.PARTLY_KEPT if recovered > 0 else PromiseToPay.Status.PENDING
    # Pending again: the review on its date settles it (broken unless more money comes).
    PromiseToPay.objects.filter(pk=promise.pk).update(
        status=status, amount_recovered=recovered or None, resolved_at=None if status == PromiseToPay.Status.PENDING else now,
        reviewed_at=None,
    )
    return str(status)


DISPUTE_FINAL = frozenset({"won", "lost", "warning_closed"})


def _dispute_event_is_newer(payment: Payment, *, event_at: dt.datetime | None) -> bool:
    """Whether a dispute event should overwrite what an earlier one set: newer, or as new and
    final (Stripe's timestamps are to the second; a closing event outranks an opening one)."""
    if event_at is None or payment.dispute_event_at is None or event_at > payment.dispute_event_at:
        return True
    return event_at == payment.dispute_event_at and payment.dispute_status not in DISPUTE_FINAL


def payment_reverse(
    *,
    reference: str,
    now: dt.datetime,
    refunded: Decimal | None = None,
    disputed: Decimal | None = None,
    dispute_status: str = "",
    event_at: dt.datetime | None = None,
    why: str = "",
) -> PaymentReversed:
    """Set what went back of payment `reference` — the cumulative refund, or the amount a dispute
    holds — and restore the account's balance by the difference. Idempotent: the same figures
    again change nothing; a dispute event older than one applied is ignored."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().filter(reference=reference[:255]).first()
        if payment is None:
            raise PaymentNotYetKnown(f"no payment {reference!r} recorded yet")
        before = payment.net_amount
        fields: dict[str, Any] = {}
        if refunded is not None:
            # Cumulative at Stripe: the larger figure is the newer one, whatever the arrival order.
            fields["refunded_amount"] = min(max(payment.refunded_amount, refunded.quantize(CENT)), payment.amount)
        if disputed is not None and _dispute_event_is_newer(payment, event_at=event_at):
            fields["disputed_amount"] = min(disputed.quantize(CENT), payment.amount)
            fields["dispute_status"] = dispute_status[:32]
            fields["dispute_event_at"] = event_at or now
        for name, value in fields.items():
            setattr(payment, name, value)
        after = payment.net_amount
        if not fields:
            return PaymentReversed(payment=payment, balance_restored=Decimal("0"))
        Payment.objects.filter(pk=payment.pk).update(**fields)
        lost = before - after  # > 0: money went back; < 0: a won dispute gave it back
        promise_status = ""
        if lost and payment.account_id is not None:
            account = Account.objects.select_for_update().get(pk=payment.account_id)
            if account.amount_due is not None:
                balance = max(account.amount_due + lost, Decimal("0"))
                account_fields: dict[str, Any] = {"amount_due": balance}
                if balance > 0 and account.status == Account.Status.RESOLVED:
                    account_fields["status"] = Account.Status.ACTIVE
                elif balance <= 0 and account.status == Account.Status.ACTIVE:
                    account_fields["status"] = Account.Status.RESOLVED
                Account.objects.filter(pk=account.pk).update(**account_fields)
            promise_status = _reopen_promise(promise_id=payment.promise_id, lost=lost, now=now)
        if lost > 0:
            FollowUpTask.objects.get_or_create(
                kind=FollowUpTask.Kind.PAYMENT_REVERSED,
                # One task for the refund and one for a dispute of the same payment.
                source_ref=f"{'dispute' if disputed is not None else 'refund'}:{payment.reference}"[:100],
                defaults={
                    "client_id": payment.client_id,
                    "team": team_for_phase(payment.phase),
                    "due_at": now + FOLLOW_UP_DUE[FollowUpTask.Kind.PAYMENT_REVERSED],
                    "detail": f"{why or 'Money went back'}: ${lost:,.2f} of the ${payment.amount:,.2f} paid on "
                    f"{timezone.localtime(payment.paid_at):%Y-%m-%d} ({payment.reference}). The balance is due again.",
                },
            )
    log.info(
        "payment reversed",
        extra={"reference": reference, "client_id": payment.client_id, "refunded": str(payment.refunded_amount),
               "disputed": str(payment.disputed_amount), "restored": str(lost), "promise": promise_status},
    )  # fmt: skip
    return PaymentReversed(payment=payment, balance_restored=lost, promise_status=promise_status)


# --- Stripe events -------------------------------------------------------------------------------

# Reference: https://docs.stripe.com/checkout/fulfillment
# Reference: https://docs.stripe.com/api/events/types
HANDLED_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "payment_intent.succeeded",
        "charge.refunded",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
    }
)
# Reference: https://docs.stripe.com/api/disputes/object (status)
# A dispute in these states holds no money of ours back any more.
DISPUTE_RETURNED = frozenset({"won", "warning_closed"})


def _payment_intent_id(obj: Mapping[str, Any]) -> str:
    value = obj.get("payment_intent")
    if isinstance(value, dict):
        value = value.get("id")
    return str(value or "")


def _cents(value: Any) -> Decimal | None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return None
    return Decimal(value) / 100


def _reversal_apply(*, event_type: str, obj: Mapping[str, Any], event_at: dt.datetime, now: dt.datetime) -> str:
    reference = _payment_intent_id(obj)
    if not reference:
        log.warning("stripe %s names no payment", event_type, extra={"object_id": str(obj.get("id"))[:80]})
        return "ignored_no_payment"
    if event_type == "charge.refunded":
        refunded = _cents(obj.get("amount_refunded"))
        if refunded is None:
            return "ignored_no_amount"
        payment_reverse(reference=reference, refunded=refunded, now=now, why="Refunded at Stripe")
        return "refund_recorded"
    amount = _cents(obj.get("amount"))
    if amount is None:
        return "ignored_no_amount"
    status = str(obj.get("status") or "")
    held = Decimal("0") if status in DISPUTE_RETURNED else amount
    reason = str(obj.get("reason") or "").replace("_", " ")
    payment_reverse(
        reference=reference, disputed=held, dispute_status=status, event_at=event_at, now=now,
        why=f"Card dispute{f' ({reason})' if reason else ''}, {status.replace('_', ' ') or 'opened'}",
    )  # fmt: skip
    return "dispute_recorded"


def _event_time(payload: Mapping[str, Any], now: dt.datetime) -> dt.datetime:
    created = payload.get("created")
    if isinstance(created, int) and not isinstance(created, bool) and created > 0:
        # Stripe's timestamp is real time; the campaign's clock (accelerated in a sandbox day) is ours.
        return clock.at(dt.datetime.fromtimestamp(created, tz=dt.timezone.utc))
    return now


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def stripe_event_apply(*, event_type: str, payload: Mapping[str, Any], now: dt.datetime) -> str:
    """Apply one verified Stripe event; returns what it did (stored on the event)."""
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        log.warning("stripe event without an object", extra={"event_type": event_type})
        return "ignored_no_object"
    if event_type not in HANDLED_EVENTS:
        log.info("stripe event of a type we do not act on", extra={"event_type": event_type, "object_id": str(obj.get("id"))[:80]})
        return "ignored_event_type"
    metadata = _metadata(obj)
    paid_at = _event_time(payload, now)
    if event_type.startswith("charge."):
        return _reversal_apply(event_type=event_type, obj=obj, event_at=paid_at, now=now)
    if event_type == "payment_intent.succeeded":
        cents = obj.get("amount_received") or obj.get("amount")
        if not isinstance(cents, int) or cents <= 0:
            return "ignored_no_amount"
        recorded = payment_record(
            client_id=str(metadata.get("client_id") or ""),
            amount=Decimal(cents) / 100,
            reference=str(obj.get("id") or ""),
            paid_at=paid_at,
            source=Payment.Source.STRIPE,
            now=now,
            call_id=str(metadata.get("call_id") or ""),
            currency=str(obj.get("currency") or "usd"),
        )
        return "payment_recorded" if recorded.created else "payment_known"
    session_id = str(obj.get("id") or "")
    if event_type == "checkout.session.async_payment_failed":
        PaymentLink.objects.filter(session_id=session_id).exclude(status=PaymentLink.Status.COMPLETE).update(
            status=PaymentLink.Status.FAILED
        )
        log.info("stripe payment failed", extra={"session_id": session_id[:80], "client_id": str(obj.get("client_reference_id"))[:64]})
        return "payment_failed"
    if obj.get("payment_status") != "paid":
        # A delayed method (bank debit): the money is confirmed by async_payment_succeeded.
        return "awaiting_payment"
    cents = obj.get("amount_total")
    if not isinstance(cents, int) or cents <= 0:
        return "ignored_no_amount"
    payment_intent = obj.get("payment_intent")
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id")
    recorded = payment_record(
        client_id=str(obj.get("client_reference_id") or metadata.get("client_id") or ""),
        amount=Decimal(cents) / 100,
        reference=str(payment_intent or session_id),
        paid_at=paid_at,
        source=Payment.Source.STRIPE,
        now=now,
        session_id=session_id,
        call_id=str(metadata.get("call_id") or ""),
        currency=str(obj.get("currency") or "usd"),
    )
    return "payment_recorded" if recorded.created else "payment_known"
