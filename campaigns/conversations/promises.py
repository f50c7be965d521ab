"""Promises to pay: settled kept or broken once their date has passed."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
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


def promise_review(*, now: dt.datetime, still_past_due: Mapping[str, bool]) -> PromiseReview:
    """Settle pending promises whose date has passed.

    `still_past_due` maps client ids to whether the warehouse still returns them as past due
    (True → the promise is broken; False → kept). Clients missing from it stay pending: absence
    of evidence is not payment. A broken promise opens a BROKEN_PROMISE follow-up task.
    """
    review = PromiseReview()
    today = timezone.localdate(now)
    due = PromiseToPay.objects.filter(status=PromiseToPay.Status.PENDING, promised_date__lt=today)
    for promise in due.iterator():
        verdict = still_past_due.get(promise.client_id)
        if verdict is None:
            review.undecided += 1
        elif promise_settle(promise=promise, kept=not verdict, now=now):
            if verdict:
                review.broken += 1
            else:
                review.kept += 1
    log.info("promises reviewed", extra={"kept": review.kept, "broken": review.broken, "undecided": review.undecided})
    return review


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
                context=results.ClientContext(
                    client_id=promise.client_id,
                    phone=promise.phone,
                    client_name=promise.client_name,
                    team=team_for_phase(promise.phase),
                    segment_name=promise.segment_name,
                    phase=promise.phase,
                ),
                source_ref=promise.call_id,
                due_at=now + FOLLOW_UP_DUE[FollowUpTask.Kind.BROKEN_PROMISE],
                detail=f"Promised {promise.amount or 'a payment'} by {promise.promised_date:%Y-%m-%d}; still past due.",
            )
    if moved:
        log.info("promise settled", extra={"call_id": promise.call_id, "kept": kept})
    return bool(moved)


def promise_review_run(*, now: dt.datetime) -> PromiseReview:
    """Settle the due promises against the warehouse: a client its queue query still returns is
    still past due (broken); one it no longer returns has paid (kept).

    The query is the same one that loads the queue (Admin → Dialer settings), so "past due" means
    exactly what the dialer acts on. It runs only when a promise is due, outside any transaction.
    """
    today = timezone.localdate(now)
    client_ids = set(
        PromiseToPay.objects.filter(status=PromiseToPay.Status.PENDING, promised_date__lt=today).values_list(
            "client_id", flat=True
        )
    )
    if not client_ids:
        return PromiseReview()
    returned: set[str] = set()
    for chunk in warehouse.iter_query(DialerSettings.load().queue_sql):
        returned.update(str(row.get("client_id")) for row in chunk if str(row.get("client_id")) in client_ids)
    return promise_review(now=now, still_past_due={client_id: client_id in returned for client_id in client_ids})
