"""Release: per ring group, when live agents are free, claim a batch of call items and dial them.

Steps 3–4 of the daily workflow. The shape of it:

- **One loop per running campaign** (`release_loop_run`, run by the django-q2 task
  `release_loop_task`). A lease on the Campaign row (`lease_owner`, `lease_expires_at`, taken and
  renewed by conditional UPDATEs) keeps a second loop from running beside it on any worker or
  cluster. The loop runs in slices shorter than the cluster timeout, hands the lease back and
  re-enqueues itself; the `release-watchdog` schedule (every minute) re-enqueues the loop of any
  running campaign whose lease has expired, so a crashed worker's campaign is picked up again.
- **Per ring group**, each pass: if the group's last batch is still out (items releasing or
  dialing) and the batch timeout has not passed, wait; otherwise ask Dialflow for free agents and,
  when at least the campaign's release threshold are free, release a batch. A group without free
  agents is asked again after the poll interval.
- **A batch** is claimed in a short transaction: queued CALL/BOTH items that are due are locked
  (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite takes the write lock at BEGIN), run
  through the compliance gate, and the passing ones move `queued → releasing` with a ReleaseBatch
  and one CallAttempt each. Blocked items are skipped with their rule, or — for a window that
  opens later today — stay queued with `next_attempt_at` set. The calls are then placed outside
  any transaction, paced by calls-per-second, never above the concurrent-call limit; the local
  window is checked once more at the moment of dialing, since pacing and retries take time.
- **Exactly once.** An item is dialed only after this worker won its `queued → releasing` claim,
  and the attempt's UUID is Retell's idempotency key: a network retry, or a loop recovering a
  crashed one's half-placed batch, re-sends the same key and gets the same call back.

Clocks: business rules (gate, batch timeouts, retry times) use `now_fn`, by default the shared
`integrations.clock` (the sandbox's accelerated clock when one runs); poll intervals are clock
seconds too. Leases, slices and pacing use real time: they are about processes and the vendor's
real rate limits.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django_q.tasks import async_task

from integrations import clock
from cadences import defaults as default_prompts
from cadences.models import DialerSettings, Phase, Segment, Team, team_for_phase
from campaigns import schedules
from campaigns.calls import caller_ids, outcomes, retry
from campaigns.calls.high_value import HighValueRule, high_value_rule, high_value_variables
from campaigns.models import Account, Alert, Callback, CallAttempt, Campaign, ContactLedgerEntry, QueueItem, ReleaseBatch
from campaigns.compliance import gate as compliance
from campaigns.alerts import alert_raise
from campaigns.compliance.gate import Block
from campaigns.payments import links as payment_links
from campaigns.sql import quoted_names
from campaigns.transitions import queue_item_transition
from integrations.dialflow import client as dialflow
from integrations.http import IntegrationError
from integrations.retell import client as retell

log = logging.getLogger(__name__)

S = QueueItem.Status
A = CallAttempt.Status

# A live loop renews its lease every few seconds (LEASE_SECONDS / 6); a loop whose worker died
# stops renewing, and once the lease lapses the watchdog hands the campaign to another worker.
LEASE_SECONDS = 20
# The watchdog runs once a minute and then keeps watching the leases for most of that minute, so
# a lapsed lease is noticed within a check interval rather than at the next schedule tick.
WATCHDOG_WATCH_SECONDS = 55.0
WATCHDOG_CHECK_SECONDS = 5.0
# A restarted loop needs a moment to be picked up and take the lease; not restarted again before.
WATCHDOG_RESTART_COOLDOWN_SECONDS = 30.0
# Claim rounds per batch: each round gates a chunk of candidates; blocked ones leave the due set,
# so a later round sees new ones.
CLAIM_ROUNDS = 10
# Retell's idempotency keys live one hour; a network-failed attempt re-released within this
# margin reuses its key, because the first request may have reached Retell.
IDEMPOTENCY_REUSE = dt.timedelta(minutes=50)
RATE_LIMIT_BACKOFF = dt.timedelta(seconds=60)
NETWORK_BACKOFF = dt.timedelta(minutes=2)
# Calls still "registered/ongoing" after this long are stale (the webhook never came) and no
# longer count against concurrency; the reconciliation job resolves them.
ACTIVE_CALL_MAX_AGE = dt.timedelta(hours=1)
IDLE_TICK_SECONDS = 1.0
WATCHDOG_SCHEDULE = "release-watchdog"


def _real_now() -> dt.datetime:
    return timezone.now()


# --- Lease -------------------------------------------------------------------------------------


def campaign_lease_acquire(*, campaign_id: int, worker_id: str, now: dt.datetime | None = None) -> bool:
    """Take the campaign's release lease if it is free, expired or already ours."""
    now = now or _real_now()
    return (
        Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.RUNNING)
        .filter(Q(lease_owner="") | Q(lease_owner=worker_id) | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))
        .update(lease_owner=worker_id, lease_expires_at=now + dt.timedelta(seconds=LEASE_SECONDS))
        == 1
    )


def campaign_lease_renew(*, campaign_id: int, worker_id: str, now: dt.datetime | None = None) -> bool:
    """Extend our lease; False when the campaign stopped running or another loop took over."""
    now = now or _real_now()
    return (
        Campaign.objects.filter(pk=campaign_id, lease_owner=worker_id, status=Campaign.Status.RUNNING).update(
            lease_expires_at=now + dt.timedelta(seconds=LEASE_SECONDS)
        )
        == 1
    )


def campaign_lease_release(*, campaign_id: int, worker_id: str) -> bool:
    return Campaign.objects.filter(pk=campaign_id, lease_owner=worker_id).update(lease_owner="", lease_expires_at=None) == 1


# --- Pacing --------------------------------------------------------------------------------------


class Pacer:
    """Spaces call placements `1 / calls_per_second` apart (0 or None: no pacing)."""

    def __init__(
        self,
        calls_per_second: float | None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / calls_per_second if calls_per_second and calls_per_second > 0 else 0.0
        self.monotonic = monotonic
        self.sleep = sleep
        self.next_at: float | None = None

    def wait(self) -> None:
        if not self.interval:
            return
        current = self.monotonic()
        if self.next_at is not None and current < self.next_at:
            self.sleep(self.next_at - current)
            current = self.next_at
        self.next_at = current + self.interval


def active_call_count(*, now: dt.datetime | None = None) -> int:
    """Calls Retell may be carrying right now, account-wide: being placed, registered or ongoing."""
    now = now or _real_now()
    return CallAttempt.objects.filter(
        status__in=[A.CREATED, A.REGISTERED, A.ONGOING], created_at__gte=now - ACTIVE_CALL_MAX_AGE
    ).count()


# --- The call --------------------------------------------------------------------------------------


def _amount(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def item_high_value_rule(item: QueueItem) -> HighValueRule:
    return high_value_rule(segment=item.segment, amount_due=item.amount_due, transfer_number=item.transfer_number or "")


def call_dynamic_variables(*, item: QueueItem, company_name: str) -> dict[str, str]:
    """What Grace needs for this touchpoint; Retell takes strings only.

    Where the segment says "verify before disclosing the balance", the amount is not sent at all:
    whoever answers cannot hear it before Grace has verified them and looked it up
    (`lookup_account`). A voicemail never cites it either way.
    """
    name = (item.client_name or "").strip()
    verify_first = item.segment.verify_before_balance
    variables = {
        "client_name": name,
        "first_name": name.split()[0] if name else "",
        "amount_due": "" if verify_first else _amount(item.amount_due),
        "verify_before_balance": "true" if verify_first else "false",
        "transfer_brief": f"{name}, {item.days_past_due} days past due ({item.segment.name}); identity not verified yet.",
        "days_past_due": str(item.days_past_due),
        "live_call_prompt": item.live_call_prompt or "",
        "voicemail_prompt": item.voicemail_prompt or "",
        "transfer_number": item.transfer_number or "",
        # Always our own signed link (never the warehouse's): opening it is recorded and it
        # leads to a live Checkout Session of the account's current balance.
        "payment_link": payment_links.secure_link_for(client_id=item.client_id, now=clock.now()),
        "company_name": company_name or "",
        "segment": item.segment.name,
        "phase": item.phase,
    }
    return high_value_variables(rule=item_high_value_rule(item), variables=variables)


def call_metadata(*, attempt: CallAttempt) -> dict[str, Any]:
    # client_id is how Grace's live tools find the account during the call.
    return {
        "campaign_id": attempt.campaign_id,
        "queue_item_id": attempt.queue_item_id,
        "attempt_id": str(attempt.pk),
        "client_id": attempt.client_id,
        "high_value": attempt.high_value,
    }


class PlaceOutcome(models.TextChoices):
    """What placing one claimed call came to."""

    PLACED = "placed", "Placed"
    RATE_LIMITED = "rate_limited", "Rate limited by Retell"
    HALTED = "halted", "Campaign halted"
    FAILED = "failed", "Refused by Retell"
    NETWORK = "network", "Network failure"
    LOST = "lost", "Recorded by another worker"  # already recorded, or given up, by someone else
    NOT_DIALED = "not_dialed", "Not dialed by Retell"  # Retell accepted the request and then reported it did not dial
    WINDOW_CLOSED = "window_closed", "Calling window closed"  # closed between claim and dial


def _reason_of(exc: IntegrationError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    text = " ".join(str(v) for v in (exc.message, body.get("error_code", ""), body.get("disconnection_reason", "")))
    return text.lower()


def _classify_error(exc: IntegrationError) -> PlaceOutcome:
    reason = _reason_of(exc)
    if exc.status == 402 or any(r in reason for r in retry.RETELL_PAYMENT_REASONS):
        return PlaceOutcome.HALTED
    if exc.status in (401, 403):
        return PlaceOutcome.HALTED
    if exc.status == 429 or any(r in reason for r in retry.RETELL_RATE_LIMIT_REASONS):
        return PlaceOutcome.RATE_LIMITED
    if exc.permanent:
        return PlaceOutcome.FAILED
    return PlaceOutcome.NETWORK


def call_place(
    *,
    attempt: CallAttempt,
    item: QueueItem,
    campaign: Campaign,
    company_name: str,
    now_fn: Callable[[], dt.datetime],
) -> str:
    """Place one claimed call (outside any transaction) and record what happened."""
    # The gate ran at claim time; pacing can carry the dial past the end of the client's window,
    # so the window is checked again at the moment of dialing.
    dial_at = now_fn()
    window = compliance.local_window_block(
        timezones=item.timezone_list, now=dial_at, start=campaign.calling_window_start, end=campaign.calling_window_end
    )
    if window is not None:
        opens = compliance.next_window_open(
            timezones=item.timezone_list, now=dial_at, start=campaign.calling_window_start, end=campaign.calling_window_end
        )
        backoff = (opens - dial_at) if opens is not None else dt.timedelta(days=1)
        attempt_not_dialed(attempt=attempt, error=f"not sent: {window.detail}", now=dial_at, backoff=backoff)
        # Recorded like any gate block, so "why was this client not called" shows it too.
        compliance.gate_record(block=window, client_id=item.client_id, channel=compliance.CALL, now=dial_at, campaign=campaign, item=item)
        log.info("call not placed: window closed before dialing", extra={"attempt_id": str(attempt.pk), "queue_item_id": item.pk})
        return PlaceOutcome.WINDOW_CLOSED
    call = None
    error: IntegrationError | None = None
    outcome = PlaceOutcome.NETWORK
    try:
        # One retry layer: the HTTP session retries 429/5xx/network failures with backoff under
        # the same idempotency key; what still fails comes back here once.
        call = retell.create_phone_call(
            from_number=attempt.from_number,
            to_number=attempt.to_number,
            agent_id=settings.RETELL_AGENT_ID,
            dynamic_variables=call_dynamic_variables(item=item, company_name=company_name),
            metadata=call_metadata(attempt=attempt),
            idempotency_key=str(attempt.pk),
        )
    except IntegrationError as exc:
        error = exc
        outcome = _classify_error(exc)
    now = now_fn()
    if call is not None:
        reason = str(call.raw.get("disconnection_reason") or "") if isinstance(call.raw, dict) else ""
        if call.call_status in ("error", "ended", "not_connected") and reason in retry.RETELL_RATE_LIMIT_REASONS | retry.RETELL_PAYMENT_REASONS:
            # Retell accepted the request but refused to dial: same handling as the HTTP errors.
            CallAttempt.objects.filter(pk=attempt.pk, call_id__isnull=True).update(call_id=call.call_id)
            error = IntegrationError(f"Retell did not dial: {reason}", permanent=reason in retry.RETELL_PAYMENT_REASONS, vendor="retell")
            outcome = PlaceOutcome.HALTED if reason in retry.RETELL_PAYMENT_REASONS else PlaceOutcome.RATE_LIMITED
        else:
            return _record_placed(attempt=attempt, item=item, campaign=campaign, call_id=call.call_id, now=dial_at)
    assert error is not None
    if outcome == PlaceOutcome.NETWORK:
        known = _network_not_dialed(attempt=attempt, error=error, now=now)
        if known:
            # Retell's answers were lost but its webhook told us the call: it exists, so it is
            # recorded, never queued to be dialed a second time.
            log.warning("create call answered only by its webhook", extra={"attempt_id": str(attempt.pk), "call_id": known})
            return _record_placed(attempt=attempt, item=item, campaign=campaign, call_id=known, now=dial_at)
        alert_raise(
            campaign=campaign, source="retell",
            message=f"Retell did not answer a create-call, retries included; the call goes back to the queue: {error}",
        )  # fmt: skip
    elif outcome == PlaceOutcome.HALTED:
        retry.campaign_halt(campaign=campaign, reason=f"Retell refused the call: {error}", now=now)
        attempt_not_dialed(attempt=attempt, error=str(error), now=now, backoff=dt.timedelta(0))
    elif outcome == PlaceOutcome.RATE_LIMITED:
        backoff = dt.timedelta(seconds=max(error.retry_after or 0, RATE_LIMIT_BACKOFF.total_seconds()))
        attempt_not_dialed(attempt=attempt, error=str(error), now=now, backoff=backoff)
    else:
        _record_failed(attempt=attempt, item=item, error=error, now=now)
    log.warning(
        "call not placed",
        extra={"attempt_id": str(attempt.pk), "queue_item_id": item.pk, "outcome": outcome, "status": error.status, "error": str(error)},
    )
    return outcome


def _network_not_dialed(*, attempt: CallAttempt, error: IntegrationError, now: dt.datetime) -> str | None:
    """After create-call's network failures: the call id a webhook brought meanwhile, or (none
    came) the attempt goes back to the queue, keeping its key for the next try.

    The attempt's row lock orders this against a webhook: one arriving later finds the attempt
    no longer pending and records its call on the ledger, and the next try re-sends the same key,
    which Retell answers with that same call.
    """
    with transaction.atomic():
        known = CallAttempt.objects.select_for_update().filter(pk=attempt.pk, placement_pending=True).values_list("call_id", flat=True).first()
        if not known:
            attempt_not_dialed(attempt=attempt, error=f"network: {error}", now=now, backoff=NETWORK_BACKOFF)
    return known


def _record_placed(*, attempt: CallAttempt, item: QueueItem, campaign: Campaign, call_id: str, now: dt.datetime) -> str:
    """Record an accepted call: attempt registered, item dialing, one call placed, one ledger entry.

    This runs once per placed call — it is the release's hot path — so it is plain SQL in one
    transaction rather than ORM updates (whose query building costs more than the statements).
    The attempt's UPDATE comes first and only matches while its placement is pending, so a
    record runs once however often recovery retries it; it waits for a webhook that holds the
    attempt's lock and returns what that webhook learned. Webhooks leave a pending attempt's
    item and counters alone, so what they brought is applied here:

    - Retell said it did not dial: nothing is counted and the item goes back to the queue;
    - an outcome: the call is recorded as usual, then the outcome moves the item on.

    The item moves releasing → dialing with the conditional UPDATE `queue_item_transition`
    makes (that move changes no counter). The ledger INSERT ignores a duplicate (kind,
    reference), as `ledger_record` guarantees.
    """
    ops = connection.ops
    real_now = ops.adapt_datetimefield_value(_real_now())
    at, a_call_id, a_status, a_outcome, a_reason, a_error, a_pending, a_updated, a_placed, a_id = quoted_names(
        CallAttempt, "call_id", "status", "outcome", "disconnection_reason", "error", "placement_pending", "updated_at", "placed_at", "id"
    )
    it, i_status, i_changed, i_attempts, i_next, i_id = quoted_names(QueueItem, "status", "status_changed_at", "call_attempts", "next_attempt_at", "id")
    ct, c_placed, c_id = quoted_names(Campaign, "calls_placed", "id")
    lt, *l_columns = quoted_names(
        ContactLedgerEntry, "client_id", "phone", "kind", "occurred_at", "reference", "campaign_date", "outcome", "state"
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # Not waiting for this commit's WAL flush saves most of the per-call cost. What it
                # risks is losing the last fraction of a second of commits if the database server
                # itself crashes: those attempts then stay pending with their items "releasing",
                # and the recovery pass re-sends the same idempotency key, so Retell answers with
                # the same call and the record is written again — nobody is dialed twice.
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
            cursor.execute(
                f"UPDATE {at} SET {a_call_id} = COALESCE({a_call_id}, %s), "
                f"{a_status} = CASE WHEN {a_status} = %s THEN %s ELSE {a_status} END, "
                f"{a_error} = CASE WHEN {a_status} = %s THEN {a_error} ELSE '' END, {a_pending} = %s, {a_updated} = %s, "
                f"{a_placed} = COALESCE({a_placed}, %s) "
                f"WHERE {a_id} = %s AND {a_pending} RETURNING {a_status}, {a_outcome}, {a_reason}",
                [
                    call_id, A.CREATED.value, A.REGISTERED.value, A.NOT_DIALED.value, False, real_now,
                    ops.adapt_datetimefield_value(now),
                    CallAttempt._meta.pk.get_db_prep_value(attempt.pk, connection),
                ],
            )  # fmt: skip
            row = cursor.fetchone()
            if row is None:
                log.warning("call already recorded", extra={"attempt_id": str(attempt.pk), "call_id": call_id, "queue_item_id": item.pk})
                return PlaceOutcome.LOST
            status, outcome, reason = row
            if status == A.NOT_DIALED:
                return _record_not_dialed(attempt=attempt, campaign=campaign, reason=reason, now=now)
            cursor.execute(
                f"UPDATE {it} SET {i_status} = %s, {i_changed} = %s, {i_attempts} = {i_attempts} + 1, {i_next} = NULL "
                f"WHERE {i_id} = %s AND {i_status} = %s",
                [S.DIALING.value, real_now, item.pk, S.RELEASING.value],
            )
            if cursor.rowcount != 1:
                # Closed meanwhile (a stop past its grace). Retell has the call all the same, so it counts.
                cursor.execute(f"UPDATE {it} SET {i_attempts} = {i_attempts} + 1 WHERE {i_id} = %s", [item.pk])
                log.warning("call placed for an item closed meanwhile", extra={"attempt_id": str(attempt.pk), "queue_item_id": item.pk})
            cursor.execute(f"UPDATE {ct} SET {c_placed} = {c_placed} + 1 WHERE {c_id} = %s", [campaign.pk])
            cursor.execute(
                f"INSERT INTO {lt} ({', '.join(l_columns)}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [
                    item.client_id,
                    item.phone,
                    ContactLedgerEntry.Kind.CALL_ATTEMPT.value,
                    ops.adapt_datetimefield_value(now),
                    call_id,
                    ops.adapt_datefield_value(campaign.date),
                    "",
                    item.state,
                ],
            )
        if outcome:
            # The call ended before it was recorded (a failed dial is reported at once).
            outcomes.outcome_reapply(attempt=attempt, now=now)
    log.info("call placed", extra={"attempt_id": str(attempt.pk), "call_id": call_id, "queue_item_id": item.pk, "outcome": outcome})
    return PlaceOutcome.PLACED


def _record_not_dialed(*, attempt: CallAttempt, campaign: Campaign, reason: str, now: dt.datetime) -> str:
    """Retell reported it did not dial before the call was recorded: nothing was counted yet."""
    retry.call_not_dialed(attempt=attempt, campaign=campaign, reason=reason, now=now, counted=False)
    if reason in retry.RETELL_PAYMENT_REASONS:
        return PlaceOutcome.HALTED
    if reason in retry.RETELL_RATE_LIMIT_REASONS:
        return PlaceOutcome.RATE_LIMITED
    return PlaceOutcome.NOT_DIALED


def _record_failed(*, attempt: CallAttempt, item: QueueItem, error: IntegrationError, now: dt.datetime) -> None:
    with transaction.atomic():
        CallAttempt.objects.filter(pk=attempt.pk).update(status=A.ERROR, error=str(error)[:2000], placement_pending=False)
        queue_item_transition(
            item_id=item.pk,
            from_statuses=[S.RELEASING],
            to_status=S.FAILED,
            last_outcome=S.FAILED,
            skip_reason="retell_rejected",
            skip_detail={"status": error.status, "error": str(error)[:500], "attempt_id": str(attempt.pk)},
        )


def attempt_not_dialed(*, attempt: CallAttempt, error: str, now: dt.datetime, backoff: dt.timedelta) -> bool:
    """A claimed call that was never dialed: the item goes back to the queue, no attempt counted."""
    unsent = Q(status__in=[A.CREATED, A.NOT_DIALED])
    with transaction.atomic():
        # An event Retell already sent about this key (its status moved on) keeps what it said.
        CallAttempt.objects.filter(pk=attempt.pk).update(
            status=Case(When(unsent, then=Value(A.NOT_DIALED.value)), default=F("status"), output_field=models.CharField()),
            error=Case(When(unsent, then=Value(error[:2000])), default=F("error"), output_field=models.TextField()),
            placement_pending=False,
        )
        return queue_item_transition(
            item_id=attempt.day_item_id,
            from_statuses=[S.RELEASING],
            to_status=S.QUEUED,
            next_attempt_at=now + backoff if backoff else None,
        )


# --- Claiming a batch --------------------------------------------------------------------------------


@dataclass
class Claim:
    batch: ReleaseBatch | None = None
    attempts: list[CallAttempt] = field(default_factory=list)
    items: dict[int, QueueItem] = field(default_factory=dict)
    skipped: int = 0
    deferred: int = 0


def _due_call_items(*, campaign: Campaign, now: dt.datetime) -> Any:
    """Queued call items that may be released now (no retry or backoff time in the future)."""
    return QueueItem.objects.filter(campaign=campaign, status=S.QUEUED, action_type__in=retry.CALL_ACTIONS).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


def _skip_locked() -> bool:
    return bool(connection.features.has_select_for_update_skip_locked)


def batch_claim(
    *, campaign: Campaign, ring_group: str, limit: int, available_agents: int, now: dt.datetime
) -> Claim:
    """Claim up to `limit` callable items of a ring group; gate, skip or defer the rest seen."""
    claim = Claim()
    pool = list(settings.RETELL_FROM_NUMBERS)
    usage: dict[str, int] | None = None
    day_end = retry.campaign_day_end(campaign)
    for _ in range(CLAIM_ROUNDS):
        wanted = limit - len(claim.attempts)
        if wanted <= 0:
            break
        chunk = max(wanted * 2, 50)
        with transaction.atomic():
            candidates = _due_call_items(campaign=campaign, now=now).filter(ring_group=ring_group).select_related("segment")
            if _skip_locked():
                candidates = candidates.select_for_update(skip_locked=True, of=("self",))
            rows = list(candidates.order_by("pk")[:chunk])
            if not rows:
                break
            blocks = compliance.gate_calls(campaign=campaign, items=rows, now=now)
            passing = [i for i in rows if blocks[i.pk] is None][:wanted]
            blocked = [(i, b) for i in rows if (b := blocks[i.pk]) is not None]
            claim.skipped += _skip_or_defer(campaign=campaign, blocked=blocked, now=now, day_end=day_end, claim=claim)
            won = _claim_items(passing, now=now)
            if won:
                if claim.batch is None:
                    claim.batch = ReleaseBatch.objects.create(campaign=campaign, ring_group=ring_group, available_agents=available_agents)
                    ReleaseBatch.objects.filter(pk=claim.batch.pk).update(released_at=now)
                    claim.batch.released_at = now
                if usage is None:
                    # "Today" for a caller id is the portal's calendar day (attempt timestamps are real time).
                    usage = caller_ids.caller_id_usage(pool=pool, since=timezone.localtime(_real_now()).replace(hour=0, minute=0, second=0, microsecond=0))
                claim.attempts.extend(_create_attempts(campaign=campaign, batch=claim.batch, items=won, pool=pool, usage=usage, now=now))
                claim.items.update({i.pk: i for i in won})
            if len(rows) < chunk:
                break
    if claim.batch is not None:
        ReleaseBatch.objects.filter(pk=claim.batch.pk).update(size=len(claim.attempts))
        claim.batch.size = len(claim.attempts)
    return claim


def _claim_items(items: Sequence[QueueItem], *, now: dt.datetime) -> list[QueueItem]:
    """`queued → releasing` for the items this worker wins (no counter: not a final status)."""
    if not items:
        return []
    if _skip_locked():
        # The rows are locked by this transaction: the conditional UPDATE moves all of them.
        ids = [i.pk for i in items]
        moved = QueueItem.objects.filter(pk__in=ids, status=S.QUEUED).update(status=S.RELEASING, status_changed_at=_real_now())
        if moved != len(ids):
            # Cannot happen while the rows are locked; refuse the whole claim rather than guess.
            raise RuntimeError(f"claimed {moved} of {len(ids)} locked queue items")
        return list(items)
    won = []
    for item in items:
        if QueueItem.objects.filter(pk=item.pk, status=S.QUEUED).update(status=S.RELEASING, status_changed_at=_real_now()) == 1:
            won.append(item)
    return won


def _reusable_attempts(items: Sequence[QueueItem], now: dt.datetime) -> dict[int, CallAttempt]:
    """Attempts whose create-call ended in a network error recently enough to reuse their key."""
    # A webhook may have told us the call id since (Retell did accept the request): re-sending
    # the key then returns that call, which is what must happen rather than a second dial.
    rows = CallAttempt.objects.filter(
        queue_item_id__in=[i.pk for i in items],
        status=A.NOT_DIALED,
        error__startswith="network:",
        created_at__gte=_real_now() - IDEMPOTENCY_REUSE,
    ).order_by("created_at")
    return {a.day_item_id: a for a in rows}


def _create_attempts(
    *,
    campaign: Campaign,
    batch: ReleaseBatch,
    items: Sequence[QueueItem],
    pool: Sequence[str],
    usage: dict[str, int],
    now: dt.datetime,
) -> list[CallAttempt]:
    reusable = _reusable_attempts(items, now)
    fresh: list[CallAttempt] = []
    attempts: list[CallAttempt] = []
    for item in items:
        previous = reusable.get(item.pk)
        if previous is not None:
            # Same key, same caller id: Retell sees the very request it may already have acted on.
            CallAttempt.objects.filter(pk=previous.pk).update(status=A.CREATED, batch=batch, placement_pending=True)
            previous.status, previous.batch, previous.placement_pending = A.CREATED, batch, True
            attempts.append(previous)
            continue
        from_number = caller_ids.caller_id_choose(to_number=item.phone, state=item.state, pool=pool, usage=usage)
        usage[from_number] = usage.get(from_number, 0) + 1
        rule = item_high_value_rule(item)
        attempt = CallAttempt(
            campaign=campaign,
            queue_item=item,
            client_id=item.client_id,
            phase=item.phase,
            segment_name=item.segment.name,
            high_value=rule.applies,
            senior_transfer_number=rule.transfer_number if rule.applies else "",
            batch=batch,
            attempt_number=item.call_attempts + 1,
            from_number=from_number,
            to_number=item.phone,
            status=A.CREATED,
            placement_pending=True,
        )
        fresh.append(attempt)
        attempts.append(attempt)
    CallAttempt.objects.bulk_create(fresh)
    return attempts


def _skip_or_defer(
    *, campaign: Campaign, blocked: Sequence[tuple[QueueItem, Block]], now: dt.datetime, day_end: dt.datetime, claim: Claim
) -> int:
    """Skip items the gate blocked for good; hold window-blocked ones until the window opens
    (when that is before the day ends). Every block is recorded. Returns how many were skipped."""
    if not blocked:
        return 0
    to_skip: list[tuple[QueueItem, Block]] = []
    to_record: list[tuple[QueueItem, Block]] = []
    deferred: dict[dt.datetime, list[int]] = {}
    for item, block in blocked:
        if block.is_window:
            opens = compliance.next_window_open(
                timezones=item.timezone_list, now=now, start=campaign.calling_window_start, end=campaign.calling_window_end
            )
            if opens is not None and opens < day_end:
                deferred.setdefault(opens, []).append(item.pk)
                # On the portal's clock, as every page is, and on the client's, which the rule reads.
                zone = next(iter(item.timezone_list), "")
                on_client_clock = f" ({compliance.client_time_words(opens, zone)})" if zone else ""
                held = Block(
                    rule=block.rule,
                    detail=f"{block.detail} Held until {compliance.portal_time_words(opens)}{on_client_clock}.",
                    inputs={**block.inputs, "next_window_open": opens.isoformat()},
                )
                to_record.append((item, held))
                continue
            block = Block(
                rule=block.rule,
                detail=f"{block.detail} The window does not open again before the campaign day ends.",
                inputs={**block.inputs, "next_window_open": opens.isoformat() if opens else None, "day_end": day_end.isoformat()},
            )
        to_skip.append((item, block))
        to_record.append((item, block))
    for opens, ids in deferred.items():
        claim.deferred += QueueItem.objects.filter(pk__in=ids, status=S.QUEUED).update(next_attempt_at=opens)
    compliance.gate_record_many(blocks=to_record, channel=compliance.CALL, now=now, campaign=campaign)
    return _skip_items(campaign=campaign, blocked=to_skip, now=now)


def _skip_items(*, campaign: Campaign, blocked: Sequence[tuple[QueueItem, Block]], now: dt.datetime) -> int:
    if not blocked:
        return 0
    if not _skip_locked():
        skipped = 0
        for item, block in blocked:
            skipped += queue_item_transition(
                item_id=item.pk, from_statuses=[S.QUEUED], to_status=S.SKIPPED, skip_reason=block.rule, skip_detail=block.inputs
            )
        return skipped
    # Locked by this transaction, so a set-based update moves exactly these rows; the counter
    # moves by the same number in the same transaction.
    for item, block in blocked:
        item.status, item.status_changed_at, item.skip_reason, item.skip_detail = S.SKIPPED, _real_now(), block.rule, block.inputs
    QueueItem.objects.bulk_update([i for i, _ in blocked], ["status", "status_changed_at", "skip_reason", "skip_detail"], batch_size=500)
    Campaign.objects.filter(pk=campaign.pk).update(skipped=F("skipped") + len(blocked))
    return len(blocked)


# --- Releasing and resolving batches -----------------------------------------------------------------


@dataclass
class ReleaseResult:
    batch: ReleaseBatch | None = None
    placed: int = 0
    requeued: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0
    halted: bool = False
    rate_limited: bool = False
    concurrency_full: bool = False
    interrupted: bool = False  # the lease was lost or the campaign stopped running mid-batch


def batch_release(
    *,
    campaign: Campaign,
    ring_group: str,
    available_agents: int,
    now_fn: Callable[[], dt.datetime],
    pacer: Pacer,
    dialer: DialerSettings | None = None,
    heartbeat: Callable[[], bool] | None = None,
) -> ReleaseResult:
    """Claim one batch of a ring group and place its calls, paced, within the concurrency limit.

    `heartbeat` runs before each call (the loop renews its lease there); when it answers False
    the calls not yet placed go back to the queue undialed.
    """
    dialer = dialer or DialerSettings.load()
    result = ReleaseResult()
    in_progress = active_call_count()
    headroom = dialer.max_concurrent_calls - in_progress
    if headroom <= 0:
        result.concurrency_full = True
        log.info("concurrent-call limit reached", extra={"campaign_id": campaign.pk, "limit": dialer.max_concurrent_calls})
        return result
    # A batch never outnumbers the agents free to take its transfers, nor the account's free
    # call slots; the smallest bound is recorded, so the batch history says why it is this size.
    bounds = [
        (campaign.batch_size, ReleaseBatch.SizedBy.BATCH_SIZE),
        (available_agents, ReleaseBatch.SizedBy.FREE_AGENTS),
        (headroom, ReleaseBatch.SizedBy.CONCURRENCY),
    ]
    limit, sized_by = min(bounds, key=lambda bound: bound[0])
    claim = batch_claim(
        campaign=campaign, ring_group=ring_group, limit=limit, available_agents=available_agents, now=now_fn()
    )
    if claim.batch is not None:
        if claim.batch.size < limit:
            sized_by = ReleaseBatch.SizedBy.QUEUE
        ReleaseBatch.objects.filter(pk=claim.batch.pk).update(sized_by=sized_by, calls_in_progress=in_progress)
        claim.batch.sized_by, claim.batch.calls_in_progress = sized_by, in_progress
    result.batch, result.skipped, result.deferred = claim.batch, claim.skipped, claim.deferred
    remaining = list(claim.attempts)
    while remaining:
        pacer.wait()
        if heartbeat is not None and not heartbeat():
            result.interrupted = True
            for rest in remaining:
                result.requeued += attempt_not_dialed(attempt=rest, error="not sent: release interrupted", now=now_fn(), backoff=dt.timedelta(0))
            break
        attempt = remaining.pop(0)
        outcome = call_place(
            attempt=attempt, item=claim.items[attempt.day_item_id], campaign=campaign, company_name=dialer.company_name, now_fn=now_fn
        )
        if outcome == PlaceOutcome.PLACED:
            result.placed += 1
        elif outcome == PlaceOutcome.FAILED:
            result.failed += 1
        elif outcome in (PlaceOutcome.RATE_LIMITED, PlaceOutcome.NETWORK, PlaceOutcome.HALTED, PlaceOutcome.WINDOW_CLOSED, PlaceOutcome.NOT_DIALED):
            result.requeued += 1
        if outcome in (PlaceOutcome.RATE_LIMITED, PlaceOutcome.HALTED):
            # Retell refuses every call for now: the rest of the batch goes back unsent.
            result.rate_limited = outcome == PlaceOutcome.RATE_LIMITED
            result.halted = outcome == PlaceOutcome.HALTED
            backoff = dt.timedelta(0) if result.halted else RATE_LIMIT_BACKOFF
            for rest in remaining:
                result.requeued += attempt_not_dialed(attempt=rest, error=f"not sent: Retell {outcome}", now=now_fn(), backoff=backoff)
            remaining = []
    if claim.batch is not None:
        log.info(
            "batch released",
            extra={
                "campaign_id": campaign.pk,
                "ring_group": ring_group,
                "batch_id": claim.batch.pk,
                "available_agents": available_agents,
                "placed": result.placed,
                "failed": result.failed,
                "requeued": result.requeued,
                "skipped": result.skipped,
                "deferred": result.deferred,
            },
        )
    return result


def batch_resolve(*, batch: ReleaseBatch, now: dt.datetime, timeout_seconds: int) -> bool:
    """True once the batch no longer holds its ring group: every item left releasing/dialing,
    or the batch timeout passed (then it is marked timed out)."""
    if batch.resolved_at is not None:
        return True
    open_items = QueueItem.objects.filter(attempts__batch=batch, status__in=[S.RELEASING, S.DIALING]).exists()
    if not open_items:
        ReleaseBatch.objects.filter(pk=batch.pk, resolved_at__isnull=True).update(resolved_at=now)
        batch.resolved_at = now
        return True
    if now >= batch.released_at + dt.timedelta(seconds=timeout_seconds):
        ReleaseBatch.objects.filter(pk=batch.pk, resolved_at__isnull=True).update(resolved_at=now, timed_out=True)
        batch.resolved_at, batch.timed_out = now, True
        log.warning("batch timed out", extra={"campaign_id": batch.campaign_id, "ring_group": batch.ring_group, "batch_id": batch.pk})
        return True
    return False


def release_recover(*, campaign: Campaign, now_fn: Callable[[], dt.datetime], pacer: Pacer, dialer: DialerSettings | None = None) -> int:
    """Finish what a crashed loop left: claimed attempts (items releasing) whose call was never recorded.

    Re-placing with the attempt's own idempotency key is safe — if the crashed loop's request
    reached Retell, Retell answers with that same call — as long as the key is still valid; an
    older one is not dialed again (it may have been) and the item is skipped with the reason.

    When a webhook has already told us the call id (the loop died after Retell accepted the call
    and before it recorded that), nothing is sent: the placement is recorded as the loop would
    have, with what the webhook said (not dialed, or an outcome).
    """
    dialer = dialer or DialerSettings.load()
    stale = _real_now() - dt.timedelta(seconds=LEASE_SECONDS)
    attempts = list(
        CallAttempt.objects.filter(campaign=campaign, placement_pending=True, queue_item__status=S.RELEASING, created_at__lt=stale)
        .select_related("queue_item__segment")
        .order_by("created_at")
    )
    placed = 0
    for attempt in attempts:
        item = attempt.day_item
        if attempt.call_id:
            outcome = _record_placed(attempt=attempt, item=item, campaign=campaign, call_id=attempt.call_id, now=now_fn())
        elif attempt.created_at < _real_now() - IDEMPOTENCY_REUSE:
            with transaction.atomic():
                CallAttempt.objects.filter(pk=attempt.pk, placement_pending=True).update(
                    status=A.ERROR, error="release interrupted; outcome unknown", placement_pending=False
                )
                queue_item_transition(
                    item_id=item.pk,
                    from_statuses=[S.RELEASING],
                    to_status=S.SKIPPED,
                    skip_reason="release_interrupted",
                    skip_detail={"attempt_id": str(attempt.pk), "created_at": attempt.created_at.isoformat()},
                )
            continue
        else:
            pacer.wait()
            outcome = call_place(attempt=attempt, item=item, campaign=campaign, company_name=dialer.company_name, now_fn=now_fn)
        placed += outcome == PlaceOutcome.PLACED
        if outcome == PlaceOutcome.HALTED:
            break
    if attempts:
        log.warning("recovered interrupted release", extra={"campaign_id": campaign.pk, "attempts": len(attempts), "placed": placed})
    return placed


# --- Callbacks the clients asked for ---------------------------------------------------------------

CALLBACK_RETRY_DELAY = dt.timedelta(minutes=2)
CALLBACK_MAX_TRIES = 3
# A callback more than this late (no campaign was running at its time) is not dialed any more.
CALLBACK_LATE_LIMIT = dt.timedelta(hours=2)


def callback_dynamic_variables(*, callback: Callback, account: Account | None, company_name: str) -> dict[str, str]:
    """What Grace needs on a callback: the client's account as it is now, and why she calls."""
    name = (account.name if account is not None else callback.client_name).strip()
    segment = account.segment if account is not None else None
    verify_first = segment.verify_before_balance if segment is not None else True
    phase = callback.phase if callback.phase in Phase.values else Phase.PAST_DUE
    resurrection = team_for_phase(phase) == Team.RESURRECTION
    transfer = (segment.resurrection_transfer_number if resurrection else segment.billing_transfer_number) if segment else ""
    variables = {
        "client_name": name,
        "first_name": name.split()[0] if name else "",
        "amount_due": "" if verify_first or account is None else _amount(account.amount_due),
        "verify_before_balance": "true" if verify_first else "false",
        "days_past_due": str(account.days_past_due) if account is not None and account.days_past_due is not None else "",
        "live_call_prompt": (
            "The client asked us to call them back at this time. Thank them for making the time, then continue.\n\n"
            + default_prompts.live_call_prompt(phase)
        ),
        "voicemail_prompt": default_prompts.voicemail_prompt(phase),
        "transfer_number": transfer,
        "transfer_brief": f"{name}: the callback they asked for; identity not verified yet.",
        "payment_link": payment_links.secure_link(account) if account is not None else "",
        "company_name": company_name or "",
        "segment": segment.name if segment is not None else callback.segment_name,
        "phase": phase,
        "call_reason": "callback",
    }
    return high_value_variables(rule=callback_high_value_rule(account=account, transfer_number=transfer), variables=variables)


def callback_high_value_rule(*, account: Account | None, transfer_number: str) -> HighValueRule:
    return high_value_rule(
        segment=account.segment if account is not None else None,
        amount_due=account.amount_due if account is not None else None,
        transfer_number=transfer_number,
    )


def callback_ring_group(*, callback: Callback, segment: Segment | None) -> str:
    """The ring group whose agents take a callback's transfer: its segment's, for the team of the
    phase it was booked in (the team callback_dynamic_variables gives the transfer number of)."""
    if segment is None:
        return ""
    phase = callback.phase if callback.phase in Phase.values else Phase.PAST_DUE
    return segment.resurrection_ring_group if team_for_phase(phase) == Team.RESURRECTION else segment.billing_ring_group


def free_agents(*, campaign: Campaign, ring_group: str, free: dict[str, int]) -> int:
    """Free agents in the ring group for this pass: asked of Dialflow once per pass (`free` keeps
    the answer), so what the pass's callbacks take is no longer free for its batches."""
    if ring_group not in free:
        available, unknown = dialflow.availability(ring_group)
        if unknown:
            alert_raise(
                campaign=campaign, source="dialflow", level=Alert.Level.WARNING,
                message=f"Free agents in {ring_group} unknown, so none are released there: {unknown}",
            )  # fmt: skip
        free[ring_group] = available
    return free[ring_group]


def callbacks_release(
    *,
    campaign: Campaign,
    now_fn: Callable[[], dt.datetime],
    state: LoopState,
    dialer: DialerSettings,
    free: dict[str, int] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Dial the callbacks that are due, through the gate with the client's consent (no blackout);
    a callback whose window is closed waits for it (when it opens before the day ends), one the
    gate refuses for good is marked missed with why. Like a batch, a callback waits for free
    agents in its ring group (at least the release threshold, one per call) to take the transfer
    it may ask for. Returns how many were placed."""
    free = {} if free is None else free
    now = now_fn()
    headroom = dialer.max_concurrent_calls - active_call_count()
    if headroom <= 0:
        return 0
    due = list(Callback.objects.filter(status=Callback.Status.SCHEDULED, due_at__lte=now).order_by("due_at")[:headroom])
    if not due:
        return 0
    late = [c for c in due if c.due_at < now - CALLBACK_LATE_LIMIT]
    for callback in late:
        Callback.objects.filter(pk=callback.pk, status=Callback.Status.SCHEDULED).update(
            status=Callback.Status.MISSED, detail="No campaign was calling at the time asked for."
        )
    due = [c for c in due if c not in late]
    accounts = {a.client_id: a for a in Account.objects.select_related("segment").filter(client_id__in={c.client_id for c in due})}
    named = {s.name: s for s in Segment.objects.filter(name__in={c.segment_name for c in due if c.client_id not in accounts})}
    by_group: dict[str, list[Callback]] = {}
    for callback in due:
        account = accounts.get(callback.client_id)
        segment = account.segment if account is not None else named.get(callback.segment_name)
        by_group.setdefault(callback_ring_group(callback=callback, segment=segment), []).append(callback)
    ready: list[Callback] = []
    for ring_group, waiting in sorted(by_group.items()):
        if not ring_group:
            log.warning("callbacks without a ring group wait", extra={"callbacks": [c.pk for c in waiting]})
            continue
        if monotonic() < state.poll_after.get(ring_group, 0.0):
            continue
        available = free_agents(campaign=campaign, ring_group=ring_group, free=free)
        if available < campaign.release_threshold:
            state.poll_after[ring_group] = monotonic() + campaign.poll_interval_seconds / clock.speed()
            log.debug("callbacks wait for free agents", extra={"ring_group": ring_group, "available": available})
            continue
        taken = waiting[:available]
        free[ring_group] = available - len(taken)
        ready += taken
    ready.sort(key=lambda c: c.due_at)
    claimed = [c for c in ready if Callback.objects.filter(pk=c.pk, status=Callback.Status.SCHEDULED).update(status=Callback.Status.DIALING)]
    blocks = compliance.gate_callbacks(campaign=campaign, callbacks=claimed, now=now)
    placed = 0
    for callback in claimed:
        block = blocks[callback.pk]
        if block is not None:
            _callback_not_now(callback=callback, block=block, campaign=campaign, now=now)
            continue
        state.pacer.wait()
        placed += _callback_place(callback=callback, account=accounts.get(callback.client_id), campaign=campaign, now_fn=now_fn, dialer=dialer)
    return placed


def _callback_not_now(*, callback: Callback, block: compliance.Block, campaign: Campaign, now: dt.datetime) -> None:
    """Record the block; a closed window makes the callback wait for it to open (today), any
    other block, or a window that does not open again today, marks it missed with why."""
    compliance.gate_record(block=block, client_id=callback.client_id, channel=compliance.CALL, now=now, campaign=campaign)
    opens = (
        compliance.next_window_open(timezones=callback.timezone_list, now=now, start=campaign.calling_window_start, end=campaign.calling_window_end)
        if block.is_window
        else None
    )
    if opens is not None and opens < retry.campaign_day_end(campaign):
        Callback.objects.filter(pk=callback.pk).update(status=Callback.Status.SCHEDULED, due_at=opens)
    else:
        Callback.objects.filter(pk=callback.pk).update(status=Callback.Status.MISSED, detail=block.detail[:300])


def _callback_place(
    *, callback: Callback, account: Account | None, campaign: Campaign, now_fn: Callable[[], dt.datetime], dialer: DialerSettings
) -> int:
    # As for every call (`call_place`): pacing can carry the dial past the end of the client's
    # window, so it is checked again at the moment of dialing, which is the time recorded.
    dial_at = now_fn()
    window = compliance.local_window_block(
        timezones=callback.timezone_list, now=dial_at, start=campaign.calling_window_start, end=campaign.calling_window_end
    )
    if window is not None:
        _callback_not_now(callback=callback, block=window, campaign=campaign, now=dial_at)
        log.info("callback not placed: window closed before dialing", extra={"callback_id": callback.pk})
        return 0
    pool = list(settings.RETELL_FROM_NUMBERS)
    from_number = caller_ids.caller_id_choose(to_number=callback.phone, state=callback.state, pool=pool, usage={})
    # Callbacks are numbered in their own series, after the client's earlier callbacks of the day
    # (the touchpoint's attempts number theirs from the queue item).
    earlier = CallAttempt.objects.filter(
        campaign=campaign, client_id=callback.client_id, kind=CallAttempt.Kind.CALLBACK
    ).aggregate(n=models.Max("attempt_number"))["n"]
    phase = callback.phase if callback.phase in Phase.values else Phase.PAST_DUE
    segment = account.segment if account is not None else None
    rule = callback_high_value_rule(
        account=account,
        transfer_number=(segment.resurrection_transfer_number if team_for_phase(phase) == Team.RESURRECTION else segment.billing_transfer_number)
        if segment is not None
        else "",
    )
    attempt = CallAttempt.objects.create(
        campaign=campaign,
        client_id=callback.client_id,
        attempt_number=(earlier or 0) + 1,
        kind=CallAttempt.Kind.CALLBACK,
        phase=callback.phase,
        segment_name=callback.segment_name,
        high_value=rule.applies,
        senior_transfer_number=rule.transfer_number if rule.applies else "",
        from_number=from_number,
        to_number=callback.phone,
        status=A.CREATED,
    )
    try:
        call = retell.create_phone_call(
            from_number=from_number,
            to_number=callback.phone,
            agent_id=settings.RETELL_AGENT_ID,
            dynamic_variables=callback_dynamic_variables(callback=callback, account=account, company_name=dialer.company_name),
            metadata={
                "campaign_id": campaign.pk,
                "attempt_id": str(attempt.pk),
                "client_id": callback.client_id,
                "callback_id": callback.pk,
                "consent_call_id": callback.consent_call_id,
                "high_value": rule.applies,
            },
            idempotency_key=str(attempt.pk),
        )
    except IntegrationError as exc:
        CallAttempt.objects.filter(pk=attempt.pk).update(status=A.NOT_DIALED, error=str(exc)[:2000])
        tries = CallAttempt.objects.filter(
            kind=CallAttempt.Kind.CALLBACK, client_id=callback.client_id, status=A.NOT_DIALED, created_at__gte=callback.created_at
        ).count()
        if exc.permanent or tries >= CALLBACK_MAX_TRIES:
            Callback.objects.filter(pk=callback.pk).update(status=Callback.Status.MISSED, attempt=attempt, detail=f"Retell: {exc}"[:300])
        else:
            Callback.objects.filter(pk=callback.pk).update(status=Callback.Status.SCHEDULED, due_at=now_fn() + CALLBACK_RETRY_DELAY)
        log.warning("callback not placed", extra={"callback_id": callback.pk, "error": str(exc)[:300]})
        return 0
    dialed_at = dial_at
    with transaction.atomic():
        CallAttempt.objects.filter(pk=attempt.pk).update(call_id=call.call_id, status=A.REGISTERED, placed_at=dialed_at)
        Callback.objects.filter(pk=callback.pk).update(status=Callback.Status.PLACED, attempt=attempt, dialed_at=dialed_at)
        ContactLedgerEntry.objects.get_or_create(
            kind=ContactLedgerEntry.Kind.CALL_ATTEMPT,
            reference=call.call_id,
            defaults={
                "client_id": callback.client_id, "phone": callback.phone, "occurred_at": dialed_at,
                "campaign_date": campaign.date, "state": callback.state,
            },
        )  # fmt: skip
    log.info("callback placed", extra={"callback_id": callback.pk, "call_id": call.call_id, "client_id": callback.client_id})
    return 1


# --- The loop ------------------------------------------------------------------------------------------


@dataclass
class LoopState:
    """What a loop remembers between passes (in memory: a new slice simply asks again)."""

    pacer: Pacer
    heartbeat: Callable[[], bool] | None = None
    poll_after: dict[str, float] = field(default_factory=dict)  # ring group → monotonic time
    paused_until: float = 0.0  # after a Retell rate limit, for every group
    batches: int = 0
    placed: int = 0


def _open_batch(*, campaign: Campaign, ring_group: str) -> ReleaseBatch | None:
    return ReleaseBatch.objects.filter(campaign=campaign, ring_group=ring_group, resolved_at__isnull=True).order_by("-released_at").first()


def release_pass(
    *,
    campaign: Campaign,
    now_fn: Callable[[], dt.datetime],
    state: LoopState,
    monotonic: Callable[[], float] = time.monotonic,
    time_left: Callable[[], float] | None = None,
) -> bool:
    """One pass over the campaign's ring groups; True when a batch was released."""
    if monotonic() < state.paused_until:
        return False
    now = now_fn()
    due_groups = set(_due_call_items(campaign=campaign, now=now).values_list("ring_group", flat=True).distinct())
    # A group whose last batch is still out is visited too, so its batch gets resolved or timed out.
    open_groups = set(ReleaseBatch.objects.filter(campaign=campaign, resolved_at__isnull=True).values_list("ring_group", flat=True))
    released = False
    dialer = DialerSettings.load()
    free: dict[str, int] = {}  # ring group → free agents this pass, asked once
    # Callbacks first: the client asked for this time.
    state.placed += callbacks_release(campaign=campaign, now_fn=now_fn, state=state, dialer=dialer, free=free, monotonic=monotonic)
    for ring_group in sorted(due_groups | open_groups):
        if monotonic() < state.poll_after.get(ring_group, 0.0):
            continue
        if ring_group in open_groups:
            open_batch = _open_batch(campaign=campaign, ring_group=ring_group)
            if open_batch is not None and not batch_resolve(batch=open_batch, now=now_fn(), timeout_seconds=campaign.batch_timeout_seconds):
                continue
        if ring_group not in due_groups:
            continue
        if time_left is not None and time_left() < _placement_budget(campaign=campaign, dialer=dialer):
            return released  # not enough of this slice left to place a whole batch
        available = free_agents(campaign=campaign, ring_group=ring_group, free=free)
        if available < campaign.release_threshold:
            state.poll_after[ring_group] = monotonic() + campaign.poll_interval_seconds / clock.speed()
            log.debug("not enough free agents", extra={"ring_group": ring_group, "available": available})
            continue
        result = batch_release(
            campaign=campaign,
            ring_group=ring_group,
            available_agents=available,
            now_fn=now_fn,
            pacer=state.pacer,
            dialer=dialer,
            heartbeat=state.heartbeat,
        )
        if result.batch is not None:
            released = True
            state.batches += 1
            state.placed += result.placed
        if result.halted or result.interrupted:
            return released
        if result.rate_limited or result.concurrency_full:
            wait = RATE_LIMIT_BACKOFF.total_seconds() if result.rate_limited else campaign.poll_interval_seconds / clock.speed()
            state.paused_until = monotonic() + wait
            return released
    return released


def _placement_budget(*, campaign: Campaign, dialer: DialerSettings) -> float:
    """Seconds a whole batch may take to place: paced calls plus a margin for the HTTP calls."""
    pace = campaign.batch_size / dialer.calls_per_second if dialer.calls_per_second > 0 else 0.0
    return pace + 15.0


def _cluster_timeout() -> float:
    timeout = settings.Q_CLUSTER.get("timeout")
    return float(timeout) if isinstance(timeout, (int, float, str)) and timeout else 300.0


def release_slice_seconds() -> float:
    """How long one loop task runs before handing over: well inside the cluster timeout."""
    timeout = _cluster_timeout()
    return max(5.0, timeout / 3)


def release_loop_run(
    *,
    campaign_id: int,
    worker_id: str,
    now_fn: Callable[[], dt.datetime] | None = None,
    slice_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    reenqueue: bool = True,
    calls_per_second: float | None = None,
) -> str:
    """Run the campaign's release loop for one slice. Returns why it returned:

    "busy" (another loop holds the lease), "ended" (the campaign is not running, or stopped
    running), "lease_lost" (another loop took over), "continue" (the slice is over; the next one
    was enqueued when `reenqueue`).
    """
    now_fn = now_fn or clock.now
    if not campaign_lease_acquire(campaign_id=campaign_id, worker_id=worker_id):
        running = Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.RUNNING).exists()
        return "busy" if running else "ended"
    schedules.schedule_install(schedules.periodic(WATCHDOG_SCHEDULE))
    started = monotonic()
    budget = slice_seconds if slice_seconds is not None else release_slice_seconds()
    hard_limit = max(budget, _cluster_timeout() * 0.8)
    dialer = DialerSettings.load()
    renewed_at = [monotonic()]

    def heartbeat() -> bool:
        # Renew at most every few seconds: cheap, and far inside the lease.
        if monotonic() - renewed_at[0] < LEASE_SECONDS / 6:
            return True
        renewed_at[0] = monotonic()
        return campaign_lease_renew(campaign_id=campaign_id, worker_id=worker_id)

    # Pacing is set in clock seconds: on a sandbox day's accelerated clock it speeds up with the
    # clock (in production the clock's speed is 1). `calls_per_second` overrides the setting.
    pace = dialer.calls_per_second * clock.speed() if calls_per_second is None else calls_per_second
    state = LoopState(pacer=Pacer(pace, monotonic=monotonic, sleep=sleep), heartbeat=heartbeat)
    log.info("release loop started", extra={"campaign_id": campaign_id, "worker_id": worker_id})
    outcome = "continue"
    try:
        campaign = Campaign.objects.get(pk=campaign_id)
        release_recover(campaign=campaign, now_fn=now_fn, pacer=state.pacer, dialer=dialer)
        recovered_at = monotonic()
        while True:
            if monotonic() - recovered_at >= LEASE_SECONDS:
                # A dead holder's last claims become recoverable one lease after they were made,
                # which may be after this loop took over: look again every lease length.
                release_recover(campaign=campaign, now_fn=now_fn, pacer=state.pacer, dialer=dialer)
                recovered_at = monotonic()
            renewed_at[0] = monotonic()
            if not campaign_lease_renew(campaign_id=campaign_id, worker_id=worker_id):
                running = Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.RUNNING).exists()
                outcome = "lease_lost" if running else "ended"
                break
            if monotonic() - started >= budget:
                outcome = "continue"
                break
            campaign = Campaign.objects.get(pk=campaign_id)
            released = release_pass(
                campaign=campaign,
                now_fn=now_fn,
                state=state,
                monotonic=monotonic,
                time_left=lambda: hard_limit - (monotonic() - started),
            )
            if not released:
                sleep(min(IDLE_TICK_SECONDS, campaign.poll_interval_seconds / clock.speed()))
    finally:
        campaign_lease_release(campaign_id=campaign_id, worker_id=worker_id)
    log.info(
        "release loop slice over",
        extra={"campaign_id": campaign_id, "worker_id": worker_id, "outcome": outcome, "batches": state.batches, "placed": state.placed},
    )
    if outcome == "continue" and reenqueue:
        release_loop_start(campaign_id=campaign_id)
    return outcome


def release_loop_start(*, campaign_id: int) -> None:
    """Enqueue the campaign's release loop once the current transaction commits."""
    transaction.on_commit(lambda: async_task("campaigns.tasks.release_loop_task", campaign_id, group="release-loop"))


def release_watchdog(*, now: dt.datetime | None = None, exclude: Collection[int] = ()) -> list[int]:
    """Re-enqueue the loop of every running campaign whose lease is free or expired."""
    now = now or _real_now()
    orphans = list(
        Campaign.objects.filter(status=Campaign.Status.RUNNING)
        .filter(Q(lease_owner="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))
        .exclude(pk__in=list(exclude))
        .values_list("pk", flat=True)
    )
    for campaign_id in orphans:
        log.warning("release loop not running; restarting it", extra={"campaign_id": campaign_id})
        release_loop_start(campaign_id=campaign_id)
    return orphans


def release_watchdog_watch(
    *,
    seconds: float | None = None,
    every: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> list[int]:
    """The watchdog's run: check the leases every `every` seconds for `seconds`, restarting the
    loop of any running campaign whose lease lapsed (not twice within the restart cool-down).

    Returns as soon as no campaign is running, so an idle portal keeps its workers free.
    """
    seconds = WATCHDOG_WATCH_SECONDS if seconds is None else seconds
    every = WATCHDOG_CHECK_SECONDS if every is None else every
    started = monotonic()
    restarted_at: dict[int, float] = {}
    restarted: list[int] = []
    while True:
        tick = monotonic()
        cooling = [pk for pk, at in restarted_at.items() if tick - at < WATCHDOG_RESTART_COOLDOWN_SECONDS]
        try:
            for campaign_id in release_watchdog(exclude=cooling):
                restarted_at[campaign_id] = tick
                restarted.append(campaign_id)
            running = Campaign.objects.filter(status=Campaign.Status.RUNNING).exists()
        except DatabaseError:
            # The database restarting is exactly when loops die: keep watching, on a new connection.
            log.warning("release watchdog: database unavailable; checking again", exc_info=True)
            connection.close()
            running = True
        if monotonic() - started + every > seconds or not running:
            return restarted
        sleep(every)
