"""Records older than the dialer settings' `ledger_retention_days` (default 400) are pruned.

The contact ledger is what the frequency caps are computed from, so nothing younger than the
retention is touched; an active suppression (do-not-call, opt-out, dispute, attorney) or an open
task or promise is never pruned, whatever its age. Deletes run in bounded batches, oldest first,
so a first run over years of history cannot hold a lock or a worker for long: what is left over
is taken by the next run (hourly).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import models, transaction
from django.db.models import Q

from cadences.models import DialerSettings
from campaigns.models import (
    Account,
    Alert,
    CallAttempt,
    Campaign,
    ContactLedgerEntry,
    DailyKpi,
    FollowUpTask,
    GateDecision,
    PayLinkCode,
    PromiseToPay,
    RejectedRow,
    ReleaseBatch,
    SmsMessage,
    Suppression,
    WebhookEvent,
)

log = logging.getLogger(__name__)

PRUNE_BATCH = 2000
# Batches per kind of record in one run.
PRUNE_BATCHES_PER_RUN = 25


@dataclass
class PruneReport:
    cutoff: str = ""
    deleted: dict[str, int] = field(default_factory=dict)
    more_left: bool = False


def _old(cutoff: dt.datetime, cutoff_date: dt.date) -> list[tuple[str, models.QuerySet, str]]:
    """(name, queryset of what may go, ordering field) per kind of record."""
    return [
        ("call attempts", CallAttempt.objects.filter(Q(placed_at__lt=cutoff) | Q(placed_at=None, created_at__lt=cutoff)), "created_at"),
        ("texts", SmsMessage.objects.filter(created_at__lt=cutoff), "created_at"),
        ("ledger entries", ContactLedgerEntry.objects.filter(occurred_at__lt=cutoff), "occurred_at"),
        ("gate decisions", GateDecision.objects.filter(decided_at__lt=cutoff), "decided_at"),
        ("lifted suppressions", Suppression.objects.filter(lifted_at__lt=cutoff), "lifted_at"),
        ("closed tasks", FollowUpTask.objects.filter(status=FollowUpTask.Status.DONE, resolved_at__lt=cutoff), "resolved_at"),
        ("settled promises", PromiseToPay.objects.exclude(status=PromiseToPay.Status.PENDING).filter(resolved_at__lt=cutoff), "resolved_at"),
        ("webhook events", WebhookEvent.objects.filter(received_at__lt=cutoff), "received_at"),
        ("acknowledged alerts", Alert.objects.filter(acknowledged_at__lt=cutoff), "acknowledged_at"),
        ("rejected rows", RejectedRow.objects.filter(campaign__date__lt=cutoff_date), "pk"),
        ("release batches", ReleaseBatch.objects.filter(campaign__date__lt=cutoff_date), "pk"),
        ("daily KPIs", DailyKpi.objects.filter(date__lt=cutoff_date), "pk"),
        ("expired payment link codes", PayLinkCode.objects.filter(expires_at__lt=cutoff), "expires_at"),
        ("accounts not seen", Account.objects.filter(last_seen_at__lt=cutoff), "last_seen_at"),
    ]


def records_prune(*, now: dt.datetime, batch: int = PRUNE_BATCH, batches: int = PRUNE_BATCHES_PER_RUN) -> PruneReport:
    """Delete what is older than the retention, in bounded batches; returns what went."""
    days = DialerSettings.load().ledger_retention_days
    cutoff = now - dt.timedelta(days=days)
    report = PruneReport(cutoff=cutoff.isoformat())
    for name, queryset, order in _old(cutoff, cutoff.date()):
        deleted = 0
        for _ in range(batches):
            ids = list(queryset.order_by(order).values_list("pk", flat=True)[:batch])
            if not ids:
                break
            with transaction.atomic():
                count, _ = queryset.model.objects.filter(pk__in=ids).delete()
            deleted += len(ids)
            if len(ids) < batch:
                break
        else:
            report.more_left = True
        if deleted:
            report.deleted[name] = deleted
    # A campaign row is small and says the day happened; its queue went at the flush.
    old_campaigns = Campaign.objects.filter(date__lt=cutoff.date(), status=Campaign.Status.FLUSHED)
    if old_campaigns.exists():
        report.deleted["campaigns"] = old_campaigns.count()
        old_campaigns.delete()
    if report.deleted:
        log.info("old records pruned", extra={"retention_days": days, "deleted": report.deleted, "more_left": report.more_left})
    return report
