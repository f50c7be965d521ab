"""A campaign's day: start (load → running), pause/resume, stop, and the flush to the warehouse.

    draft ──start──► loading ──► running ◄──resume── paused
                       │            │  └──pause──────►  │
                       ▼            ▼                   ▼
                    (error:      stopping ◄─────────────┘
                     back to        │  (waits for calls in flight, at most STOP_GRACE)
                     draft)         ▼
                                 stopped ──flush──► flushed

Every transition is a conditional UPDATE on the status, so two supervisors pressing "stop" at
once, or a retried task, do the work once. Background steps are enqueued by dotted path after the
transaction commits; nothing here calls a vendor inside a transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django_q.tasks import async_task

from cadences.models import DialerSettings, Phase
from campaigns.models import (
    Account,
    CallAttempt,
    Campaign,
    ContactLedgerEntry,
    FollowUpTask,
    PromiseToPay,
    QueueItem,
    SmsMessage,
    Suppression,
)
from integrations import clock, modes
from campaigns.metrics import kpis
from campaigns.compliance import gate as compliance
from campaigns.queue import load as queue
from campaigns.calls import release
from campaigns.lifecycle import delivery
from campaigns.sms import outbound as sms
from campaigns import spreadsheets
from campaigns.alerts import alert_raise
from campaigns.transitions import campaign_recount
from integrations.http import IntegrationError
from integrations.warehouse import client as warehouse

log = logging.getLogger(__name__)

Status = Campaign.Status
ItemStatus = QueueItem.Status

# How long a stopping campaign waits for calls already in flight to report their outcome.
STOP_GRACE = dt.timedelta(minutes=20)
# A flush claim older than this belongs to a worker that died mid-flush.
FLUSH_CLAIM_TTL = dt.timedelta(minutes=15)
CALL_OUTCOME_STATUSES = (
    ItemStatus.ANSWERED, ItemStatus.VOICEMAIL, ItemStatus.TRANSFERRED, ItemStatus.NO_ANSWER, ItemStatus.FAILED,
)  # fmt: skip
FLUSH_CHUNK_ROWS = 500

# The history table's columns are the warehouse adapter's, so the table seed_warehouse creates
# and the rows the flush writes cannot drift apart.
HISTORY_COLUMNS = warehouse.HISTORY_COLUMNS

RECONCILED_COLUMNS = (
    "campaign_date",
    "client_id",
    "client_name",
    "phone",
    "segment",
    "phase",
    "days_past_due",
    "direction",
    "action_type",
    "final_status",
    "skip_reason",
    "calls",
    "inbound_calls",
    "texts",
    "last_call_outcome",
    "last_call_id",
    "recording_url",
    "transferred",
    "promise_date",
    "promise_amount",
    "dispute",
    "open_tasks",
    "opted_out",
    "sms_status",
    "inbound_call",
    # The same codes in words, for whoever reads the file; the columns above stay machine values.
    "phase_display",
    "final_status_display",
    "skip_reason_display",
    "last_call_outcome_display",
)


def campaign_create(*, date: dt.date, user: Any = None) -> Campaign:
    """The campaign for `date` (one per date), created with today's release settings if new."""
    settings_row = DialerSettings.load()
    campaign, created = Campaign.objects.get_or_create(
        date=date,
        defaults={
            "created_by": user if getattr(user, "pk", None) else None,
            "is_sandbox": modes.any_sandbox(),
            "batch_size": settings_row.batch_size,
            "release_threshold": settings_row.release_threshold,
            "poll_interval_seconds": settings_row.poll_interval_seconds,
            "batch_timeout_seconds": settings_row.batch_timeout_seconds,
            "calling_window_start": settings_row.calling_window_start,
            "calling_window_end": settings_row.calling_window_end,
            "end_of_day": settings_row.end_of_day,
        },
    )
    if created:
        log.info("campaign created", extra={"campaign_id": campaign.pk, "date": date.isoformat()})
    return campaign



class CampaignStateError(Exception):
    """The campaign is not in a state that allows this action."""


def _move(campaign: Campaign, *, from_statuses: Sequence[str], to_status: str, **fields: Any) -> bool:
    moved = Campaign.objects.filter(pk=campaign.pk, status__in=from_statuses).update(status=to_status, **fields)
    campaign.refresh_from_db()
    return moved == 1


def _enqueue(func: str, *args: Any, **kwargs: Any) -> None:
    transaction.on_commit(lambda: async_task(func, *args, **kwargs))


# --- start, pause, resume ---------------------------------------------------------------


def campaign_start(*, campaign: Campaign, user: Any = None) -> Campaign:
    """Begin the day: load the queue in the background, then run."""
    if not _move(campaign, from_statuses=[Status.DRAFT], to_status=Status.LOADING, load_error="", load_started_at=clock.now()):
        raise CampaignStateError(f"{campaign} is {campaign.get_status_display().lower()}; only a draft campaign can start.")
    log.info("campaign starting", extra={"campaign_id": campaign.pk, "user": getattr(user, "username", "")})
    _enqueue("campaigns.tasks.campaign_load_task", campaign.pk)
    return campaign


def campaign_load_and_run(*, campaign: Campaign, now: dt.datetime | None = None, start_release: bool = True) -> Campaign:
    """Load the queue; on success the campaign runs, on a warehouse error it returns to draft with the error shown.

    `start_release=False` leaves starting the release loop to the caller (a sandbox day run in
    one process drives the loop itself).
    """
    now = now or clock.now()
    try:
        queue.queue_load(campaign=campaign, now=now)
    except IntegrationError as exc:
        _move(campaign, from_statuses=[Status.LOADING], to_status=Status.DRAFT, load_error=str(exc))
        alert_raise(campaign=campaign, source="warehouse", message=f"Queue load failed: {exc}")
        log.warning("queue load failed", extra={"campaign_id": campaign.pk, "error": str(exc)})
        return campaign
    if not _move(campaign, from_statuses=[Status.LOADING], to_status=Status.RUNNING, started_at=now, load_finished_at=clock.now()):
        return campaign
    sms.sms_schedule(campaign=campaign, now=now)
    queue.revalidation_schedule_install(campaign=campaign)
    if start_release:
        release.release_loop_start(campaign_id=campaign.pk)
    log.info("campaign running", extra={"campaign_id": campaign.pk, "queued": campaign.rows_inserted})
    return campaign


def campaign_pause(*, campaign: Campaign, user: Any = None, reason: str = "") -> Campaign:
    if not _move(campaign, from_statuses=[Status.RUNNING], to_status=Status.PAUSED, halt_reason=reason):
        raise CampaignStateError(f"{campaign} is not running.")
    log.info("campaign paused", extra={"campaign_id": campaign.pk, "reason": reason})
    return campaign


def campaign_resume(*, campaign: Campaign, user: Any = None) -> Campaign:
    if not _move(campaign, from_statuses=[Status.PAUSED], to_status=Status.RUNNING, halt_reason=""):
        raise CampaignStateError(f"{campaign} is not paused.")
    release.release_loop_start(campaign_id=campaign.pk)
    log.info("campaign resumed", extra={"campaign_id": campaign.pk})
    return campaign


# --- stop and flush ---------------------------------------------------------------------


def campaign_stop(*, campaign: Campaign, user: Any = None, reason: str = "manual", finish: bool = True) -> Campaign:
    """Stop releasing and texting; finish once the calls in flight have reported, then flush.

    `finish=False` leaves finishing and flushing to the caller (a sandbox day checks the
    invariants between the two).
    """
    if not _move(
        campaign,
        from_statuses=[Status.LOADING, Status.RUNNING, Status.PAUSED],
        to_status=Status.STOPPING,
        stopped_at=clock.now(),
    ):
        raise CampaignStateError(f"{campaign} is {campaign.get_status_display().lower()}; it cannot be stopped.")
    queue.revalidation_schedule_remove(campaign=campaign)
    log.info("campaign stopping", extra={"campaign_id": campaign.pk, "reason": reason, "user": getattr(user, "username", "")})
    if finish:
        _enqueue("campaigns.tasks.campaign_finish_task", campaign.pk)
    return campaign


def campaign_finish(*, campaign: Campaign, now: dt.datetime | None = None) -> bool:
    """Close a stopping campaign. Returns False while calls are still in flight (call again later)."""
    now = now or clock.now()
    campaign.refresh_from_db()
    if campaign.status != Status.STOPPING:
        return campaign.status in (Status.STOPPED, Status.FLUSHED)
    in_flight = QueueItem.objects.filter(campaign=campaign, status__in=[ItemStatus.RELEASING, ItemStatus.DIALING])
    stopped_at = campaign.stopped_at or now
    if in_flight.exists() and now - stopped_at < STOP_GRACE:
        return False
    _skip_untouched(campaign=campaign, now=now)
    _move(campaign, from_statuses=[Status.STOPPING], to_status=Status.STOPPED)
    log.info("campaign stopped", extra={"campaign_id": campaign.pk})
    return True


def _skip_untouched(*, campaign: Campaign, now: dt.datetime) -> None:
    """Items the day never reached are closed as skipped, with why, in one set-based step."""
    with transaction.atomic():
        leftover = QueueItem.objects.filter(
            campaign=campaign,
            status__in=[ItemStatus.QUEUED, ItemStatus.SMS_SCHEDULED, ItemStatus.RELEASING, ItemStatus.DIALING],
        )
        detail = {"stopped_at": now.isoformat()}
        still_dialing = leftover.filter(status__in=[ItemStatus.RELEASING, ItemStatus.DIALING]).update(
            status=ItemStatus.FAILED, skip_reason="no_outcome_before_stop", skip_detail=detail, status_changed_at=now
        )
        skipped = leftover.update(
            status=ItemStatus.SKIPPED, skip_reason="campaign_stopped", skip_detail=detail, status_changed_at=now
        )
        QueueItem.objects.filter(
            campaign=campaign, sms_status__in=[QueueItem.SmsStatus.PENDING, QueueItem.SmsStatus.SCHEDULED]
        ).update(sms_status=QueueItem.SmsStatus.SKIPPED)
        if still_dialing or skipped:
            Campaign.objects.filter(pk=campaign.pk).update(
                failed=F("failed") + still_dialing, skipped=F("skipped") + skipped
            )


def campaign_flush(*, campaign: Campaign) -> Campaign:
    """Write the day's history to the warehouse; only after every chunk is confirmed, clean up.

    One worker flushes a day at a time: the flush is claimed first (a conditional update), so a
    second worker — the minute tick beside the stop's own task, say — leaves it alone instead of
    writing the reconciled file again from a queue that is being cleaned up. A failure anywhere
    leaves every row in place, records the error on the campaign and raises an alert; flushing
    again is safe because the warehouse write is an upsert on the record id. Only the day's queue
    items are removed: calls, texts, batches and everything else stay with the clients' records.
    """
    campaign.refresh_from_db()
    if campaign.status != Status.STOPPED:
        raise CampaignStateError(f"{campaign} must be stopped before its history is flushed (it is {campaign.status}).")
    if not _flush_claim(campaign):
        log.info("flush already under way", extra={"campaign_id": campaign.pk})
        return campaign
    table = DialerSettings.load().history_table
    written = 0
    try:
        warehouse.ensure_table(table, HISTORY_COLUMNS, key=warehouse.HISTORY_KEY)
        for chunk in _chunks(history_rows(campaign=campaign), FLUSH_CHUNK_ROWS):
            written += warehouse.write_rows(table, chunk, key=warehouse.HISTORY_KEY, columns=list(HISTORY_COLUMNS))
    except IntegrationError as exc:
        return _flush_failed(campaign, f"History flush failed: {exc}", written=written)
    kpis.kpis_snapshot(campaign=campaign)
    summary = day_summary(campaign=campaign)
    try:
        path, rows = reconciled_file_write(campaign=campaign)
    except OSError as exc:
        # The history is in the warehouse, but the file the team reads is not: keep the day until it is.
        return _flush_failed(campaign, f"Reconciled file could not be written ({exc.strerror or exc}): check RECONCILED_FILE_DIR", written=written)
    with transaction.atomic():
        if not _move(
            campaign, from_statuses=[Status.STOPPED], to_status=Status.FLUSHED,
            flushed_at=clock.now(), flush_error="", flushed_rows=written, flush_claimed_at=None,
            day_summary=summary | {"history_rows": written}, reconciled_file=path.name, reconciled_rows=rows,
        ):  # fmt: skip
            return campaign
        QueueItem.objects.filter(campaign=campaign).delete()
        # The partners' copies of the file go out once the flush has committed.
        delivery.reconciled_deliveries_create(campaign=campaign)
    log.info("campaign flushed", extra={"campaign_id": campaign.pk, "rows": written, "reconciled_rows": rows})
    return campaign


def _flush_claim(campaign: Campaign) -> bool:
    """Take the day's flush for this worker; False when another one holds a fresh claim. A claim
    older than FLUSH_CLAIM_TTL belongs to a worker that died, and is taken over."""
    now = timezone.now()  # about processes, so real time
    return bool(
        Campaign.objects.filter(pk=campaign.pk, status=Status.STOPPED)
        .filter(Q(flush_claimed_at__isnull=True) | Q(flush_claimed_at__lt=now - FLUSH_CLAIM_TTL))
        .update(flush_claimed_at=now)
    )


def _flush_failed(campaign: Campaign, message: str, *, written: int) -> Campaign:
    """Everything stays; the error shows on the campaign, and one open alert says so."""
    Campaign.objects.filter(pk=campaign.pk).update(flush_error=message, flush_claimed_at=None)
    alert_raise(campaign=campaign, source="flush", message=message)
    log.error("history flush failed", extra={"campaign_id": campaign.pk, "error": message, "rows_written": written})
    campaign.refresh_from_db()
    return campaign


def day_summary(*, campaign: Campaign) -> dict[str, Any]:
    """What the day came to, from its queue, kept on the campaign once the queue is cleaned up:
    touchpoints per status and action, per ring group, and the skipped ones by reason."""
    items = QueueItem.objects.filter(campaign=campaign)
    status_counts = {status: n for status, n in items.values_list("status").annotate(n=Count("*")).order_by()}
    actions = {action: n for action, n in items.values_list("action_type").annotate(n=Count("*")).order_by()}
    ring_groups: dict[str, dict[str, int]] = {}
    for ring_group, status, n in items.values_list("ring_group", "status").annotate(n=Count("*")).order_by():
        group = ring_groups.setdefault(ring_group, {"queued": 0, "in_flight": 0, "done": 0})
        if status == ItemStatus.QUEUED:
            group["queued"] += n
        elif status in (ItemStatus.RELEASING, ItemStatus.DIALING):
            group["in_flight"] += n
        elif status in CALL_OUTCOME_STATUSES:
            group["done"] += n
    skipped = [
        [reason or "unspecified", n]
        for reason, n in items.filter(status=ItemStatus.SKIPPED).values_list("skip_reason").annotate(n=Count("*")).order_by("-n", "skip_reason")
    ]
    promised = items.filter(
        client_id__in=PromiseToPay.objects.filter(
            call_id__in=CallAttempt.objects.filter(campaign=campaign, call_id__isnull=False).values("call_id")
        ).values("client_id")
    ).exclude(status=ItemStatus.TRANSFERRED).count()
    return {
        "touchpoints": sum(status_counts.values()),
        "status_counts": status_counts,
        "action_types": actions,
        "ring_groups": ring_groups,
        "skipped_by_reason": skipped,
        "promised_items": promised,
    }


def history_rows_in_warehouse(*, date: dt.date) -> int:
    """How many history rows the warehouse holds for a campaign date (the flush's confirmation)."""
    table = DialerSettings.load().history_table
    qualified = warehouse.qualified_table(warehouse.target().dialect, table)
    for chunk in warehouse.iter_query(f"SELECT COUNT(*) AS n FROM {qualified} WHERE campaign_date = '{date.isoformat()}'"):
        return int(chunk[0]["n"])
    return 0


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def history_rows(*, campaign: Campaign) -> Iterator[dict[str, Any]]:
    """One warehouse row per call attempt (outbound and inbound), per SMS, and per item closed
    without contact. Every time is on the campaign's clock: `placed_at` for every attempt,
    answered or not, and `sent_at` for every text."""
    promises = {p.call_id: p for p in PromiseToPay.objects.filter(call_id__in=CallAttempt.objects.filter(campaign=campaign).values("call_id"))}
    now = clock.now()
    accounts = _accounts_of_inbound(campaign)
    attempts = CallAttempt.objects.filter(campaign=campaign).select_related("queue_item__segment").order_by("placed_at", "created_at")
    for attempt in attempts.iterator(chunk_size=2000):
        item = attempt.queue_item
        base = _item_fields(campaign, item) if item is not None else _account_fields(campaign, accounts.get(attempt.client_id), attempt)
        promise = promises.get(attempt.call_id or "")
        yield base | {
            "record_id": attempt.call_id or f"attempt-{attempt.pk}",
            "record_type": "inbound_call" if attempt.kind == CallAttempt.Kind.INBOUND else "call",
            "call_kind": attempt.kind,
            "outcome": attempt.outcome or attempt.status,
            "call_status": attempt.status,
            "disconnection_reason": attempt.disconnection_reason,
            "in_voicemail": attempt.in_voicemail,
            "attempt_number": attempt.attempt_number,
            "from_number": attempt.from_number,
            "placed_at": attempt.placed_at,
            "started_at": attempt.started_at,
            "ended_at": attempt.ended_at,
            "duration_ms": attempt.duration_ms,
            "transfer_destination": attempt.transfer_destination,
            "recording_url": attempt.recording_url,
            "summary": attempt.summary[:4000],
            "sentiment": attempt.sentiment,
            "transcript": attempt.transcript,
            "custom_analysis": attempt.custom_analysis or None,
            "error": attempt.error,
            "cost": attempt.cost,
            "promise_date": promise.promised_date if promise else None,
            "promise_amount": promise.amount if promise else None,
            "recorded_at": now,
        }
    messages = SmsMessage.objects.filter(campaign=campaign).select_related("queue_item__segment").order_by("created_at")
    for message in messages.iterator(chunk_size=2000):
        base = _item_fields(campaign, message.queue_item) if message.queue_item else _empty_item_fields(campaign)
        yield base | {
            "record_id": message.local_id,
            "record_type": "sms",
            "client_id": message.client_id or base["client_id"],
            "phone": message.phone,
            "sms_text": message.text[:1600],
            "sms_status": message.status,
            "sms_inbox_id": message.inbox_id,
            "sms_kind": message.kind,
            "heymarket_id": message.heymarket_id,
            "error": message.error,
            "sent_at": message.sent_at,
            "started_at": message.sent_at,
            "recorded_at": now,
        }
    untouched = QueueItem.objects.filter(campaign=campaign, status__in=[ItemStatus.SKIPPED, ItemStatus.INELIGIBLE]).select_related("segment")
    for item in untouched.iterator(chunk_size=2000):
        yield _item_fields(campaign, item) | {
            "record_id": f"skip-{campaign.date.isoformat()}-{item.client_id}",
            "record_type": item.status,
            "recorded_at": now,
        }


def _accounts_of_inbound(campaign: Campaign) -> dict[str, Account]:
    """The accounts of the day's inbound callers (outbound calls have their queue item)."""
    client_ids = CallAttempt.objects.filter(campaign=campaign, kind=CallAttempt.Kind.INBOUND).exclude(client_id="").values("client_id")
    return {a.client_id: a for a in Account.objects.filter(client_id__in=client_ids).select_related("segment")}


def _empty_item_fields(campaign: Campaign) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(HISTORY_COLUMNS)
    row["campaign_date"] = campaign.date
    return row


def _item_fields(campaign: Campaign, item: QueueItem) -> dict[str, Any]:
    row = _empty_item_fields(campaign)
    row.update(
        client_id=item.client_id,
        client_name=item.client_name,
        phone=item.phone,
        segment=item.segment.name,
        phase=item.phase,
        days_past_due=item.days_past_due,
        action_type=item.action_type,
        ring_group=item.ring_group,
        item_status=item.status,
        skip_reason=item.skip_reason,
        sms_status=item.sms_status,
    )
    return row


def _account_fields(campaign: Campaign, account: Account | None, attempt: CallAttempt) -> dict[str, Any]:
    row = _empty_item_fields(campaign)
    row.update(client_id=attempt.client_id, phone=attempt.client_phone)
    if account is not None:
        row.update(
            client_name=account.name,
            segment=account.segment.name if account.segment is not None else None,
            days_past_due=account.days_past_due,
        )
    return row


# --- the same-day reconciled file ----------------------------------------------------------


def reconciled_rows(*, campaign: Campaign) -> Iterator[dict[str, Any]]:
    """One row per client touched that day, outbound and inbound (seed: the partner's reconciled
    file). Its call and text counts are the history's rows of the same day and client: calls the
    dialer placed (not the ones Retell refused to dial), inbound calls, and texts."""
    day_start = timezone.make_aware(dt.datetime.combine(campaign.date, dt.time.min))
    day_end = day_start + dt.timedelta(days=1)
    dialed = CallAttempt.objects.filter(campaign=campaign).exclude(status=CallAttempt.Status.NOT_DIALED)
    calls: dict[str, dict[str, Any]] = {}
    for attempt in dialed.order_by("placed_at", "created_at").only(
        "client_id", "kind", "outcome", "status", "call_id", "recording_url", "from_number", "to_number"
    ):
        entry = calls.setdefault(attempt.client_id, {"outbound": 0, "inbound": 0, "last": None, "recording": "", "phone": ""})
        entry["inbound" if attempt.kind == CallAttempt.Kind.INBOUND else "outbound"] += 1
        entry["last"] = attempt
        entry["phone"] = entry["phone"] or attempt.client_phone
        if attempt.recording_url:
            entry["recording"] = attempt.recording_url
    texts = dict(
        SmsMessage.objects.filter(campaign=campaign).exclude(client_id="").values_list("client_id").annotate(n=Count("*")).order_by()
    )
    inbound_ledger = dict(
        ContactLedgerEntry.objects.filter(
            kind=ContactLedgerEntry.Kind.INBOUND_CALL, occurred_at__gte=day_start, occurred_at__lt=day_end
        ).values_list("client_id", "outcome")
    )
    call_ids = dialed.exclude(call_id__isnull=True).values("call_id")
    promises = {p.client_id: p for p in PromiseToPay.objects.filter(call_id__in=call_ids).order_by("created_at")}
    touched = set(calls) | set(texts) | set(inbound_ledger)
    disputes = set(
        FollowUpTask.objects.filter(client_id__in=touched, kind=FollowUpTask.Kind.DISPUTE).values_list("client_id", flat=True)
    )
    open_tasks: dict[str, list[str]] = {}
    for client_id, kind in (
        FollowUpTask.objects.filter(client_id__in=touched).exclude(status=FollowUpTask.Status.DONE).values_list("client_id", "kind")
    ):
        open_tasks.setdefault(client_id, []).append(FollowUpTask.Kind(kind).label)
    opted_out = set(
        Suppression.objects.filter(
            reason=Suppression.Reason.SMS_OPT_OUT, lifted_at__isnull=True, client_id__in=touched
        ).values_list("client_id", flat=True)
    )
    seen: set[str] = set()

    def common(client_id: str) -> dict[str, Any]:
        promise = promises.get(client_id)
        entry = calls.get(client_id, {})
        last = entry.get("last")
        return {
            "campaign_date": campaign.date.isoformat(),
            "client_id": client_id,
            "calls": entry.get("outbound", 0),
            "inbound_calls": entry.get("inbound", 0),
            "texts": texts.get(client_id, 0),
            "last_call_outcome": (last.outcome or last.status) if last is not None else "",
            "last_call_id": (last.call_id or "") if last is not None else "",
            "recording_url": entry.get("recording", ""),
            "transferred": "yes" if last is not None and last.outcome == CallAttempt.Outcome.TRANSFERRED else "no",
            "promise_date": promise.promised_date.isoformat() if promise else "",
            "promise_amount": str(promise.amount) if promise and promise.amount is not None else "",
            "dispute": "yes" if client_id in disputes else "no",
            "open_tasks": "; ".join(sorted(set(open_tasks.get(client_id, [])))),
            "opted_out": "yes" if client_id in opted_out else "no",
            "inbound_call": "yes" if client_id in inbound_ledger or entry.get("inbound") else "no",
        }

    items = QueueItem.objects.filter(campaign=campaign).select_related("segment").order_by("client_id")
    for item in items.iterator(chunk_size=2000):
        seen.add(item.client_id)
        yield dict.fromkeys(RECONCILED_COLUMNS, "") | common(item.client_id) | {
            "client_name": item.client_name,
            "phone": item.phone,
            "segment": item.segment.name,
            "phase": item.phase,
            "days_past_due": item.days_past_due,
            "direction": "outbound",
            "action_type": item.action_type,
            "final_status": item.status,
            "skip_reason": item.skip_reason,
            "sms_status": item.sms_status,
        }
    # Clients who called in (or were texted) without a touchpoint of their own today.
    rest = sorted((touched - seen) - {""})
    accounts = {a.client_id: a for a in Account.objects.filter(client_id__in=rest).select_related("segment")}
    for client_id in rest:
        account = accounts.get(client_id)
        entry = calls.get(client_id, {})
        yield dict.fromkeys(RECONCILED_COLUMNS, "") | common(client_id) | {
            "client_name": account.name if account else "",
            "phone": entry.get("phone") or (account.phone if account else ""),
            "segment": account.segment.name if account and account.segment else "",
            "days_past_due": account.days_past_due if account and account.days_past_due is not None else "",
            "direction": "inbound" if client_id in inbound_ledger or entry.get("inbound") else "outbound",
            "final_status": inbound_ledger.get(client_id) or "inbound",
        }


def _reconciled_words(row: dict[str, Any]) -> dict[str, Any]:
    statuses = dict(ItemStatus.choices) | {"inbound": "Inbound"}
    outcomes = dict(CallAttempt.Outcome.choices) | dict(CallAttempt.Status.choices)
    return row | {
        "phase_display": dict(Phase.choices).get(row["phase"], row["phase"]),
        "final_status_display": statuses.get(row["final_status"], str(row["final_status"]).replace("_", " ").capitalize()),
        "skip_reason_display": compliance.rule_label(row["skip_reason"]) if row["skip_reason"] else "",
        "last_call_outcome_display": outcomes.get(row["last_call_outcome"], row["last_call_outcome"]),
    }


def reconciled_csv_lines(*, campaign: Campaign) -> Iterator[str]:
    """The reconciled file as CSV text lines (streamed for the download view); every cell goes
    through the one spreadsheet-safe writer, since names and phones come from outside."""
    rows = (_reconciled_words(row) for row in reconciled_rows(campaign=campaign))
    yield from spreadsheets.csv_dict_lines(rows, fieldnames=RECONCILED_COLUMNS)


def reconciled_file_write(*, campaign: Campaign) -> tuple[Path, int]:
    directory = Path(settings.RECONCILED_FILE_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"reconciled-{campaign.date.isoformat()}.csv"
    tmp = path.with_suffix(".csv.tmp")
    lines = -1  # the header is not a client's row
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        for text in reconciled_csv_lines(campaign=campaign):
            handle.write(text)
            lines += 1
    tmp.replace(path)
    log.info("reconciled file written", extra={"campaign_id": campaign.pk, "path": path.name, "rows": lines})
    return path, lines


# --- end of day -----------------------------------------------------------------------------


def campaigns_autostop(*, now: dt.datetime | None = None) -> list[int]:
    """Stop running or paused campaigns whose end of day has passed (portal time zone)."""
    now = now or clock.now()
    local_now = timezone.localtime(now)
    stopped: list[int] = []
    for campaign in Campaign.objects.filter(status__in=[Status.RUNNING, Status.PAUSED, Status.LOADING]):
        end = timezone.make_aware(dt.datetime.combine(campaign.date, campaign.end_of_day))
        if local_now >= end:
            try:
                campaign_stop(campaign=campaign, reason="end_of_day")
                stopped.append(campaign.pk)
            except CampaignStateError:
                continue
    return stopped


# How long the daily start waits before trying again a start whose queue load failed.
AUTOSTART_RETRY = dt.timedelta(minutes=10)


def campaign_autostart(*, now: dt.datetime | None = None) -> int | None:
    """The daily start: once the dialer settings' start time has passed on a business day with no
    campaign yet, create the day's campaign and start it. Returns its id when this call started it.

    A day that already has a campaign (made by hand, or stopped already) is left alone, and so is
    a day after its end-of-day time. Two workers racing here create one campaign (one per date)
    and start it once (only a draft starts). A start whose queue load fails raises the load's
    alert and is tried again; an unreadable holiday calendar raises one too.
    """
    now = now or clock.now()
    dialer = DialerSettings.load()
    local = timezone.localtime(now)
    today = local.date()
    if not dialer.auto_start or local.time() < dialer.auto_start_at or local.time() >= dialer.end_of_day:
        return None
    existing = Campaign.objects.filter(date=today).first()
    if existing is not None:
        # The daily start's own campaign whose queue load failed (the warehouse was down: an alert
        # says so) is tried again every AUTOSTART_RETRY; any other campaign of the day is left alone.
        retry_due = existing.load_started_at is None or existing.load_started_at <= now - AUTOSTART_RETRY
        if not (existing.auto_started and existing.status == Status.DRAFT and existing.load_error and retry_due):
            return None
    try:
        closed = dialer.not_a_business_day(today)
    except ValueError as exc:  # a calendar the settings page would refuse now (stored before a library update)
        alert_raise(campaign=None, source="daily_start", message=f"Today's campaign was not started: the dialer settings' calendar is unreadable ({exc}).")
        return None
    if closed:
        log.info("daily start skipped", extra={"date": today.isoformat(), "why": closed})
        return None
    campaign = campaign_create(date=today)
    Campaign.objects.filter(pk=campaign.pk, status=Status.DRAFT).update(auto_started=True)
    try:
        campaign_start(campaign=campaign)
    except CampaignStateError:
        return None  # another worker started it a moment ago
    log.info("campaign started by the daily start", extra={"campaign_id": campaign.pk, "date": today.isoformat()})
    return campaign.pk


def recount_matches(*, campaign: Campaign) -> bool:
    """True when the campaign counters equal a recount from its items."""
    campaign.refresh_from_db()
    return all(getattr(campaign, name) == value for name, value in campaign_recount(campaign=campaign).items())


def campaigns_tick(*, now: dt.datetime | None = None) -> dict[str, list[int]]:
    """Every minute: start the day's campaign (the daily start), stop campaigns at end of day,
    finish stopping ones, flush stopped ones.

    A flush that failed is retried here too, so a warehouse outage heals by itself once the
    warehouse answers; the supervisor can also retry by hand.
    """
    now = now or clock.now()
    started = campaign_autostart(now=now)
    report: dict[str, list[int]] = {
        "autostarted": [started] if started else [], "autostopped": campaigns_autostop(now=now), "stopped": [], "flushed": [],
    }  # fmt: skip
    for campaign in Campaign.objects.filter(status=Status.STOPPING):
        if campaign_finish(campaign=campaign, now=now):
            report["stopped"].append(campaign.pk)
    for campaign in Campaign.objects.filter(status=Status.STOPPED):
        if campaign_flush(campaign=campaign).status == Status.FLUSHED:
            report["flushed"].append(campaign.pk)
    return report
