"""Reconciliation: no call stays "dialing" forever.

Retell's webhooks can be lost (our outage longer than its three retries, a network partition).
Every minute, attempts still open 15 minutes after they were created are looked up with Retell's
get-call and resolved through the very same code as a webhook (`outcomes.call_record_apply`), so
a lost event and a late lookup end in the same state. An attempt Retell cannot tell us about —
get-call keeps failing, the call is unknown to Retell, or it is still not finished hours later —
is marked failed with the reason kept, and its item with it.

The same pass re-applies outcomes that arrived while the item was still being released (the
webhook can beat the release step that moves the item to dialing).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db.models import Q

from campaigns.models import CallAttempt, QueueItem
from campaigns.calls import outcomes
from campaigns.conversations import results
from integrations.http import IntegrationError
from integrations.retell import client as retell

log = logging.getLogger(__name__)

# Retell's calls end well within this (its own default maximum call length is one hour).
RECONCILE_AFTER = dt.timedelta(minutes=15)
GIVE_UP_AFTER = dt.timedelta(hours=3)
# Outcomes that beat the release step are looked for this far back.
REAPPLY_WINDOW = dt.timedelta(days=1)


@dataclass
class ReconcileReport:
    looked_up: int = 0
    resolved: int = 0
    still_open: int = 0
    failed: int = 0
    lookup_errors: int = 0
    reapplied: int = 0


def attempts_reconcile(*, now: dt.datetime, limit: int = 200) -> ReconcileReport:
    """Resolve stale open attempts through get-call; returns what happened."""
    report = ReconcileReport()
    _outcomes_reapply(now=now, report=report)

    stale = (
        CallAttempt.objects.filter(
            status__in=outcomes.OPEN_ATTEMPT_STATUSES, outcome="", created_at__lte=now - RECONCILE_AFTER
        )
        .select_related("queue_item")
        .order_by("created_at")[:limit]
    )
    for attempt in stale:
        age = now - attempt.created_at
        if not attempt.call_id:
            # Retell never gave this attempt a call id. While the item is still being released
            # the release step owns it; once it claims to be dialing, nobody will resolve it.
            if attempt.queue_item is None or attempt.queue_item.status == QueueItem.Status.DIALING or age >= GIVE_UP_AFTER:
                outcomes.attempt_fail(attempt=attempt, reason="The call was never registered with Retell.", now=now)
                report.failed += 1
            continue
        report.looked_up += 1
        try:
            call = retell.get_call(attempt.call_id)  # a vendor call: never inside a transaction
        except IntegrationError as exc:
            report.lookup_errors += 1
            if exc.permanent or age >= GIVE_UP_AFTER:
                outcomes.attempt_fail(
                    attempt=attempt, reason=f"Reconciliation: Retell get-call failed for {age}: {exc}", now=now
                )
                report.failed += 1
            else:
                CallAttempt.objects.filter(pk=attempt.pk).update(error=f"Reconciliation lookup failed: {exc}"[:2000])
                log.warning("retell get-call failed during reconciliation", extra={"call_id": attempt.call_id, "error": str(exc)[:300]})
            continue
        if not isinstance(call, dict) or not call.get("call_id"):
            call = {**(call if isinstance(call, dict) else {}), "call_id": attempt.call_id}
        record = results.call_event_apply(call=call, event_type="reconcile", now=now)
        resolved = record.attempt if record is not None else None
        if resolved is not None and (resolved.outcome or resolved.status == CallAttempt.Status.NOT_DIALED):
            report.resolved += 1
        elif age >= GIVE_UP_AFTER:
            outcomes.attempt_fail(
                attempt=attempt,
                reason=f"Reconciliation: Retell still reports the call as {call.get('call_status') or 'unknown'} after {age}.",
                now=now,
            )
            report.failed += 1
        else:
            report.still_open += 1
    if report.looked_up or report.failed or report.reapplied:
        log.info("call attempts reconciled", extra=vars(report))
    return report


def _outcomes_reapply(*, now: dt.datetime, report: ReconcileReport) -> None:
    """Outcomes known on the attempt whose item is still dialing: apply them now."""
    pending = (
        CallAttempt.objects.filter(
            ~Q(outcome=""),
            queue_item__status=QueueItem.Status.DIALING,
            created_at__gte=now - REAPPLY_WINDOW,
        )
        .select_related("queue_item")
        .order_by("created_at")
    )
    for attempt in pending:
        if outcomes.outcome_reapply(attempt=attempt, now=now):
            report.reapplied += 1
