"""Promises to pay: settled kept or broken once their date has passed; a partly kept one is
reviewed then too."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from cadences.models import DialerSettings, team_for_phase
from campaigns.conversations import results
from campaigns.models import FOLLOW_UP_DUE, FollowUpTask, PromiseToPay
from integrations.warehouse import client as warehouse

log = logging.getLogger(__name__)


@dataclass
class PromiseReview:
    kept: int = 0
    broken: int = 0
    undecided: int = 0
    short: int = 0  # partly kept, and the client is still past due: a follow-up task each


def _due_for_review(today: dt.date) -> QuerySet[PromiseToPay]:
    """Promises whose date has passed and that are still to be settled or reviewed."""
    return PromiseToPay.objects.filter(promised_date__lt=today).filter(
        Q(status=PromiseToPay.Status.PENDING) | Q(status=PromiseToPay.Status.PARTLY_KEPT, reviewed_at=None)
    )


def promise_review(*, now: dt.datetime, still_past_due: Mapping[str, bool]) -> PromiseReview:
    """Settle pending promises whose date has passed.

    `still_past_due` maps client ids to whether the warehouse still returns them as past due
    (True → the promise is broken; False → kept). Clients missing from it stay pending: absence
    of evidence is not payment. A broken promise opens a BROKEN_PROMISE follow-up task.
    """
    review = PromiseReview()
    today = timezone.localdate(now)
    for promise in _due_for_review(today).iterator():
        verdict = still_past_due.get(promise.client_id)
        if verdict is None:
            review.undecided += 1
        elif promise.status == PromiseToPay.Status.PARTLY_KEPT:
            outcome = partly_kept_review(promise=promise, still_past_due=verdict, now=now)
            review.kept += outcome == PromiseToPay.Status.KEPT
            review.short += outcome == PromiseToPay.Status.PARTLY_KEPT
        elif promise_settle(promise=promise, kept=not verdict, now=now):
            if verdict:
                review.broken += 1
            else:
                review.kept += 1
    log.info("promises reviewed", extra={"kept": review.kept, "broken": review.broken, "short": review.short, "undecided": review.undecided})
    return review


def _promise_context(promise: PromiseToPay) -> results.ClientContext:
    """Who a promise's follow-up task is about, and the team its phase belongs to."""
    return results.ClientContext(
        client_id=promise.client_id,
        phone=promise.phone,
        client_name=promise.client_name,
        team=team_for_phase(promise.phase),
        segment_name=promise.segment_name,
        phase=promise.phase,
    )


def promise_settle(*, promise: PromiseToPay, kept: bool, now: dt.datetime) -> bool:
    """Mark one pending promise kept (amount recovered) or broken (a follow-up task); True if it was pending."""
    with transaction.atomic():
        moved = PromiseToPay.objects.filter(pk=promise.pk, status=PromiseToPay.Status.PENDING).update(
            status=PromiseToPay.Status.KEPT if kept else PromiseToPay.Status.BROKEN,
            resolved_at=now,
            amount_recovered=F("amount") if kept else None,
        )
        if moved and not kept:
            results.task_create(
                kind=FollowUpTask.Kind.BROKEN_PROMISE,
                context=_promise_context(promise),
                source_ref=promise.call_id,
                due_at=now + FOLLOW_UP_DUE[FollowUpTask.Kind.BROKEN_PROMISE],
                detail=f"Promised {promise.amount or 'a payment'} by {promise.promised_date:%Y-%m-%d}; still past due.",
            )
    if moved:
        log.info("promise settled", extra={"call_id": promise.call_id, "kept": kept})
    return bool(moved)


def partly_kept_review(*, promise: PromiseToPay, still_past_due: bool, now: dt.datetime) -> str:
    """Review a partly kept promise once its date has passed: kept in full when the warehouse no
    longer returns the client as past due (the rest was paid some other way), otherwise left
    partly kept with a follow-up task naming the shortfall. Returns the status, "" if already reviewed."""
    with transaction.atomic():
        fields: dict[str, object] = {"reviewed_at": now}
        if not still_past_due:
            fields.update(status=PromiseToPay.Status.KEPT, resolved_at=now)
            if promise.amount is not None:
                fields["amount_recovered"] = promise.amount
        moved = PromiseToPay.objects.filter(pk=promise.pk, status=PromiseToPay.Status.PARTLY_KEPT, reviewed_at=None).update(**fields)
        if moved and still_past_due:
            paid = promise.amount_recovered or 0
            short = (promise.amount - paid) if promise.amount is not None else None
            results.task_create(
                kind=FollowUpTask.Kind.PROMISE_PARTLY_KEPT,
                context=_promise_context(promise),
                source_ref=promise.call_id,
                due_at=now + FOLLOW_UP_DUE[FollowUpTask.Kind.PROMISE_PARTLY_KEPT],
                detail=(
                    f"Promised ${promise.amount:,.2f} by {promise.promised_date:%Y-%m-%d}; ${paid:,.2f} paid, "
                    f"${short:,.2f} short, and still past due."
                    if short is not None
                    else f"Promised a payment by {promise.promised_date:%Y-%m-%d}; ${paid:,.2f} paid, and still past due."
                ),
            )
    if not moved:
        return ""
    status = PromiseToPay.Status.PARTLY_KEPT if still_past_due else PromiseToPay.Status.KEPT
    log.info("partly kept promise reviewed", extra={"call_id": promise.call_id, "status": str(status)})
    return str(status)


def promise_review_run(*, now: dt.datetime) -> PromiseReview:
    """Settle the due promises against the warehouse: a client its queue query still returns is
    still past due (broken); one it no longer returns has paid (kept).

    The query is the same one that loads the queue (Admin → Dialer settings), so "past due" means
    exactly what the dialer acts on. It runs only when a promise is due, outside any transaction.
    """
    today = timezone.localdate(now)
    client_ids = set(_due_for_review(today).values_list("client_id", flat=True))
    if not client_ids:
        return PromiseReview()
    returned: set[str] = set()
    for chunk in warehouse.iter_query(DialerSettings.load().queue_sql):
        returned.update(str(row.get("client_id")) for row in chunk if str(row.get("client_id")) in client_ids)
    return promise_review(now=now, still_past_due={client_id: client_id in returned for client_id in client_ids})
