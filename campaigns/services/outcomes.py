"""Retell call events: stored once, resolved into outcomes, and turned into follow-up work.

Three steps, each idempotent so that Retell's retries, duplicates and out-of-order deliveries
leave the same state as one clean delivery:

1. **Storage** — every authenticated event is stored raw in `WebhookEvent`, once per
   (event, call_id) for `call_*` events and per (event, call_id, event timestamp) for
   `transfer_*` and other repeating events, and the webhook answers at once. A django-q task
   processes the stored event (`webhook_event_process`: the event row claimed, everything it
   changes committed together with `processed_at`); a failure leaves `processed_at` empty with
   the error, and `webhook_events_retry` runs every unprocessed event again a minute later —
   including one whose task was never enqueued.
2. **Outcome** — the facts of every event (status, disconnection reason, voicemail flag,
   transfer) are merged into the `CallAttempt`, never erasing what an earlier event said, and
   the outcome is recomputed from the merged facts by DESIGN.md's precedence: transfer →
   voicemail → not connected (no answer or failed) → error → answered. Because the outcome is a
   function of everything seen so far, `call_analyzed` arriving before `call_ended` gives the
   same result as the other way round. The queue item moves forward only
   (`queue_item_transition`), which also moves the campaign counters exactly once.
3. **What the conversation produced** — `call_analysis.custom_analysis_data`.

Fields to configure in the Retell agent's post-call analysis (`custom_analysis_data`)
------------------------------------------------------------------------------------
Names are matched exactly. Booleans may be Retell "Boolean" fields or text ("yes"/"no");
a non-empty text other than no/false/none counts as yes and is kept as the detail.

=========================  =========  ==========================================================
field                      type       effect
=========================  =========  ==========================================================
promise_to_pay_date        text       Date the client promised to pay (ISO ``YYYY-MM-DD``
                                      preferred; ``MM/DD/YYYY`` and ``March 14`` are accepted).
                                      Creates a PromiseToPay with a reminder the morning before.
promise_to_pay_amount      number     Amount promised (``125.50`` or ``"$1,250.00"``); optional.
dispute                    boolean    The client disputes the debt or amount: a DISPUTE follow-up
                                      task and a dispute hold on all outreach.
hardship                   boolean    Financial hardship: a HARDSHIP follow-up task.
cancellation_request       boolean    The client wants to cancel: a CANCELLATION_REQUEST task.
legal_language             text/bool  Legal threats or legal terms: a LEGAL_LANGUAGE task; when
                                      the text mentions an attorney or lawyer, also an attorney
                                      suppression on all outreach.
vulnerable_customer        boolean    Signs of vulnerability: a VULNERABLE_CUSTOMER task.
callback_requested         boolean    The client asked to be called back: a CALLBACK_REQUEST task
                                      and the queue item's ``next_attempt_at``.
callback_time              text       When (ISO date-time; a time without an offset is read in
                                      the client's time zone). Moved into 08:00–21:00 local.
user_requested_dnc         boolean    The client asked not to be called: a do-not-call
                                      suppression (also set by the disconnection reason of the
                                      same name).
right_party                boolean    The person on the line was the client (read by the KPIs'
                                      right-party contact rate; ``wrong_party`` true also counts).
=========================  =========  ==========================================================

Follow-up tasks land in the team queue of the client's phase (billing before suspension,
resurrection from it on) with a due time per kind (`FOLLOW_UP_DUE`), unassigned until a
supervisor gives them an owner in the admin.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import re
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from cadences.models import RESURRECTION_PHASES, ActionType, DialerSettings
from campaigns.models import (
    CallAttempt,
    Campaign,
    ContactLedgerEntry,
    FollowUpTask,
    PromiseToPay,
    QueueItem,
    Suppression,
    WebhookEvent,
)
from campaigns.services import compliance, release
from campaigns.services.compliance import LEGAL_WINDOW
from campaigns.services.ledger import ledger_record, suppression_add
from campaigns.services.sql import quoted_names
from campaigns.services.transitions import queue_item_transition
from integrations.warehouse import client as warehouse

log = logging.getLogger(__name__)

VENDOR = "retell"
Outcome = CallAttempt.Outcome
S = QueueItem.Status

# --- Outcome precedence (DESIGN.md, Contracts → Retell) ------------------------------------
# Reference: https://docs.retellai.com/reliability/debug-call-disconnect
TRANSFER_REASONS = frozenset({"call_transfer", "transfer_bridged", "call_take_over"})
VOICEMAIL_REASONS = frozenset({"voicemail_reached"})
NO_ANSWER_REASONS = frozenset({"dial_no_answer", "dial_busy", "user_declined", "ivr_reached"})
FAILED_REASONS = frozenset(
    {
        "invalid_destination",
        "dial_failed",
        "telephony_provider_permission_denied",
        "telephony_provider_unavailable",
        "sip_routing_error",
        "marked_as_spam",
        "scam_detected",
        "registered_call_timeout",
        "error_llm_websocket_open",
        "error_llm_websocket_lost_connection",
        "error_llm_websocket_runtime",
        "error_llm_websocket_corrupt_payload",
        "error_no_audio_received",
        "error_asr",
        "error_retell",
        "error_unknown",
        "error_user_not_joined",
    }
)
# A person was on the line: the call is answered unless a stronger fact says otherwise.
CONVERSATION_REASONS = frozenset(
    {
        "user_hangup",
        "agent_hangup",
        "inactivity",
        "max_duration_reached",
        "transfer_cancelled",
        "user_requested_dnc",
        "manual_stopped",
    }
)
# The call never reached the network: not an attempt, the item goes back to the queue.
NO_PAYMENT_REASON = "no_valid_payment"
NOT_DIALED_REASONS = release.RETELL_RATE_LIMIT_REASONS | release.RETELL_PAYMENT_REASONS
DNC_REASON = "user_requested_dnc"
KNOWN_REASONS = (
    TRANSFER_REASONS | VOICEMAIL_REASONS | NO_ANSWER_REASONS | FAILED_REASONS | CONVERSATION_REASONS | NOT_DIALED_REASONS
)

# Events whose (event, call_id) identifies one delivery; every other event repeats per call and
# is told apart by its timestamp.
ONCE_PER_CALL_EVENTS = frozenset({"call_started", "call_ended", "call_analyzed"})
KNOWN_EVENTS = ONCE_PER_CALL_EVENTS | frozenset(
    {"transcript_updated", "transfer_started", "transfer_bridged", "transfer_cancelled", "transfer_ended"}
)

# Retell's call_status, in the only order an attempt may move through.
_STATUS_RANK: dict[str, int] = {
    CallAttempt.Status.CREATED: 0,
    CallAttempt.Status.REGISTERED: 1,
    CallAttempt.Status.ONGOING: 2,
    CallAttempt.Status.ENDED: 3,
    CallAttempt.Status.NOT_CONNECTED: 3,
    CallAttempt.Status.ERROR: 3,
    CallAttempt.Status.NOT_DIALED: 3,
}
OPEN_ATTEMPT_STATUSES = (CallAttempt.Status.CREATED, CallAttempt.Status.REGISTERED, CallAttempt.Status.ONGOING)

# Statuses an outcome may be applied from; queue_item_transition keeps only the allowed ones.
_OUTCOME_SOURCES = (S.RELEASING, S.DIALING, S.ANSWERED, S.VOICEMAIL)
CONVERSATION_OUTCOMES = frozenset({Outcome.ANSWERED, Outcome.TRANSFERRED})
SMS_FOLLOW_UP_OUTCOMES = frozenset({Outcome.VOICEMAIL, Outcome.NO_ANSWER})
# SMS states a call outcome may still change; anything later belongs to the SMS sender.
_SMS_OPEN_STATES = (
    QueueItem.SmsStatus.NONE,
    QueueItem.SmsStatus.PENDING,
    QueueItem.SmsStatus.NOT_NEEDED,
    QueueItem.SmsStatus.SCHEDULED,
)

NOT_DIALED_RETRY_DELAY = dt.timedelta(seconds=60)
# What the attempt's columns hold (PositiveIntegerField; DecimalField(10, 4) in dollars).
MAX_DURATION_MS = 2**31 - 1
MAX_COST_CENTS = Decimal(10**8)
RETRY_FAILED_EVENTS_AFTER = dt.timedelta(minutes=1)
PROCESS_TASK = "campaigns.tasks.webhook_event_process_task"
PROCESS_BY_KEY_TASK = "campaigns.tasks.webhook_event_process_by_key_task"
# Enqueued with save=False: the event row already records the outcome (processed_at, error), and
# saving every success makes django-q's monitor lock and prune its whole result table each time.
RETRY_FAILED_EVENTS_FOR = dt.timedelta(hours=24)


# =============================================================================================
# 1. Storage
# =============================================================================================


class MalformedEvent(ValueError):
    """The body is JSON but not a Retell event (400, nothing stored)."""


def retell_dedupe_key(*, payload: Mapping[str, Any], raw_body: str) -> str:
    """The identity of one Retell delivery, the same on every retry of it."""
    event = str(payload.get("event") or "")
    call = _object(payload.get("call"))
    call_id = str(call.get("call_id") or "")
    if event in ONCE_PER_CALL_EVENTS and call_id:
        key = f"{event}:{call_id}"
        # Retell's ids are short; anything longer than the column is stored by its digest.
        return key if len(key) <= 200 else f"{event[:64]}:sha256-{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()}"
    stamp = payload.get("event_timestamp") or payload.get("timestamp")
    if stamp is None and event.startswith("transfer_"):
        stamp = call.get("transfer_end_timestamp") if event == "transfer_ended" else None
    if stamp is None:
        # No timestamp to tell repeats apart: the body itself is the identity, so an exact
        # retry is still a duplicate.
        stamp = "sha256-" + hashlib.sha256(raw_body.encode("utf-8")).hexdigest()[:32]
    return f"{event}:{call_id}:{stamp}"[:200]


_UNSTORABLE_ESCAPE = re.compile(r"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """The payload with what no database text or JSON column takes (NUL, a lone surrogate)
    replaced by U+FFFD, so an odd event is kept rather than refused."""
    if isinstance(value, str):
        return _UNSTORABLE_CHARS.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def webhook_event_accept(*, payload: Mapping[str, Any], raw_body: str) -> tuple[WebhookEvent, bool]:
    """Store one authenticated Retell event and enqueue its processing; returns (event, created).

    One short transaction: the event row, and — with the database as the django-q broker — the
    task row with it, so a webhook costs a single commit and a task never looks for an event that
    is not committed. (With Redis the task is pushed once the row is committed.) The unique
    (vendor, dedupe_key) row is the idempotency guard: a concurrent duplicate waits on it, then
    fails its insert, and is answered as the duplicate it is.
    """
    if _UNSTORABLE_ESCAPE.search(raw_body):  # only escapes can carry them into the parsed JSON
        payload = storable(payload)
    event_type = payload.get("event")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("'event' must be a non-empty string")
    call = payload.get("call")
    if call is not None and not isinstance(call, dict):
        raise MalformedEvent("'call' must be an object")
    dedupe_key = retell_dedupe_key(payload=payload, raw_body=raw_body)
    reference = str((call or {}).get("call_id") or "")[:100]
    if _single_statement_accept():
        stored = _accept_in_one_statement(
            dedupe_key=dedupe_key, event_type=event_type[:64], reference=reference, payload=payload, raw_body=raw_body
        )
        if stored is not None:
            return stored, True
        return WebhookEvent.objects.get(vendor=VENDOR, dedupe_key=dedupe_key), False
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                vendor=VENDOR,
                dedupe_key=dedupe_key,
                event_type=event_type[:64],
                reference=reference,
                payload=dict(payload),
            )
            if Conf.ORM:
                # Same database, same commit. If it cannot take the task row it could not take
                # the event either: nothing is stored, the answer is a 5xx and Retell retries.
                async_task(PROCESS_TASK, event.pk, save=False)
            else:
                transaction.on_commit(lambda: _push(event))
    except IntegrityError:
        existing = WebhookEvent.objects.filter(vendor=VENDOR, dedupe_key=dedupe_key).first()
        if existing is None:  # an integrity error of another kind
            raise
        return existing, False
    return event, True


def process_task_package(dedupe_key: str, *, now: dt.datetime) -> str:
    """The signed django-q package of the processing task, with the keys `async_task` gives it
    (`async_task(PROCESS_BY_KEY_TASK, dedupe_key, save=False)`; a test holds the two equal),
    built here without its per-call human-readable name and enqueue signal: together they cost
    more than the rest of a webhook's own work."""
    task_id = uuid.uuid4().hex
    task: dict[str, Any] = {
        "id": task_id,
        "name": f"retell-event-{task_id[:12]}",
        "func": PROCESS_BY_KEY_TASK,
        "args": (dedupe_key,),
        "save": False,
    }
    if Conf.CACHED:
        task["cached"] = Conf.CACHED
    if Conf.ACK_FAILURES:
        task["ack_failure"] = Conf.ACK_FAILURES
    task["kwargs"] = {}
    task["started"] = now
    return SignedPackage.dumps(task)


def _single_statement_accept() -> bool:
    """PostgreSQL with the database as the django-q broker (the default deployment)."""
    return (
        connection.vendor == "postgresql"
        and Conf.ORM == "default"
        and not Conf.SYNC
        and not Conf.BROKER_CLASS
    )


@functools.cache
def _accept_sql() -> str:
    et, e_vendor, e_key, e_type, e_ref, e_payload, e_received, e_error, e_id = quoted_names(
        WebhookEvent, "vendor", "dedupe_key", "event_type", "reference", "payload", "received_at", "error", "id"
    )
    qt, q_key, q_payload, q_lock = quoted_names(OrmQ, "key", "payload", "lock")
    return (
        f"WITH event AS ("
        f"INSERT INTO {et} ({e_vendor}, {e_key}, {e_type}, {e_ref}, {e_payload}, {e_received}, {e_error}) "
        f"VALUES (%s, %s, %s, %s, %s::jsonb, %s, '') ON CONFLICT ({e_vendor}, {e_key}) DO NOTHING RETURNING {e_id}"
        f"), task AS (INSERT INTO {qt} ({q_key}, {q_payload}, {q_lock}) SELECT %s, %s, %s FROM event) "
        f"SELECT {e_id} FROM event"
    )


def _accept_in_one_statement(*, dedupe_key: str, event_type: str, reference: str, payload: Mapping[str, Any], raw_body: str) -> WebhookEvent | None:
    """The event row and its processing task in one statement (a data-modifying CTE): one round
    trip and one commit, and a duplicate (the unique (vendor, dedupe_key)) inserts neither.
    Returns the stored event, or None for a duplicate.

    This is the hot path of every webhook, so it skips the ORM's per-instance work. The task is
    keyed by the event's dedupe key (its id is not known before the insert); the raw body goes
    into the JSON column as sent, unless it had to be made storable.
    """
    now = timezone.now()
    body = json.dumps(payload) if _UNSTORABLE_ESCAPE.search(raw_body) else raw_body
    with connection.cursor() as cursor:
        cursor.execute(_accept_sql(), [VENDOR, dedupe_key, event_type, reference, body, now, Conf.CLUSTER_NAME, process_task_package(dedupe_key, now=now), now])
        row = cursor.fetchone()
    if row is None:
        return None
    event = WebhookEvent(
        id=row[0], vendor=VENDOR, dedupe_key=dedupe_key, event_type=event_type, reference=reference, received_at=now, error=""
    )
    event.payload = payload
    return event


def _push(event: WebhookEvent) -> None:
    """Hand a committed event to the Redis broker. A failure is logged, never raised: the event is
    stored, and `webhook_events_retry` processes whatever was not processed a minute later."""
    try:
        async_task(PROCESS_TASK, event.pk, save=False)
    except Exception:
        log.exception("retell event not enqueued; the retry task will process it", extra={"webhook_event_id": event.pk})


def webhook_event_process(*, event_id: int, now: dt.datetime) -> bool:
    """Process one stored Retell event unless it already was; True when this call processed it.

    The event row is claimed (locked, skipping one another worker holds) and everything the
    event changes commits together with `processed_at`. A failure rolls all of it back and
    records the error on the event, for `webhook_events_retry`.
    """
    try:
        with transaction.atomic():
            event = (
                WebhookEvent.objects.select_for_update(skip_locked=True)
                .filter(pk=event_id, processed_at__isnull=True)
                .first()
            )
            if event is None:
                return False
            retell_event_apply(event_type=event.event_type, payload=event.payload, now=now)
            WebhookEvent.objects.filter(pk=event_id).update(processed_at=now, error="")
    except Exception as exc:
        log.exception(
            "retell event processing failed", extra={"webhook_event_id": event_id, "error": str(exc)[:300]}
        )
        WebhookEvent.objects.filter(pk=event_id, processed_at__isnull=True).update(
            error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        return False
    return True


def webhook_event_process_by_key(*, dedupe_key: str, now: dt.datetime) -> bool:
    """`webhook_event_process` for a task that names its event by dedupe key."""
    event_id = WebhookEvent.objects.filter(vendor=VENDOR, dedupe_key=dedupe_key).values_list("pk", flat=True).first()
    if event_id is None:  # stored and deleted since (a flushed day): nothing left to do
        log.warning("retell event to process not found", extra={"dedupe_key": dedupe_key[:200]})
        return False
    return webhook_event_process(event_id=event_id, now=now)


def webhook_events_retry(*, now: dt.datetime, limit: int = 500) -> int:
    """Run again the Retell events whose processing failed (recent ones only); returns how many succeeded."""
    ids = list(
        WebhookEvent.objects.filter(
            vendor=VENDOR,
            processed_at__isnull=True,
            received_at__lte=now - RETRY_FAILED_EVENTS_AFTER,
            received_at__gte=now - RETRY_FAILED_EVENTS_FOR,
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    done = sum(1 for pk in ids if webhook_event_process(event_id=pk, now=now))
    if ids:
        log.info("retell events retried", extra={"attempted": len(ids), "processed": done})
    return done


# =============================================================================================
# 2. Outcome
# =============================================================================================


@dataclass(frozen=True)
class Resolution:
    outcome: str  # one of CallAttempt.Outcome, or "" while the call is not finished
    not_dialed: bool = False
    unknown_reason: bool = False


def call_outcome_resolve(
    *, call_status: str, disconnection_reason: str, in_voicemail: bool | None, transferred: bool
) -> Resolution:
    """DESIGN.md's precedence over the facts known so far (pure; no database)."""
    reason = disconnection_reason or ""
    if transferred or reason in TRANSFER_REASONS:
        return Resolution(Outcome.TRANSFERRED)
    if reason in VOICEMAIL_REASONS or in_voicemail is True:
        return Resolution(Outcome.VOICEMAIL)
    if reason in NOT_DIALED_REASONS:
        return Resolution("", not_dialed=True)
    if reason in NO_ANSWER_REASONS:
        return Resolution(Outcome.NO_ANSWER)
    if reason in FAILED_REASONS or call_status == CallAttempt.Status.NOT_CONNECTED:
        return Resolution(Outcome.FAILED)
    if call_status == CallAttempt.Status.ERROR:
        return Resolution(Outcome.FAILED)
    if reason and reason not in KNOWN_REASONS:
        return Resolution(Outcome.FAILED, unknown_reason=True)
    if call_status == CallAttempt.Status.ENDED or reason in CONVERSATION_REASONS:
        return Resolution(Outcome.ANSWERED)
    return Resolution("")


def retell_event_apply(*, event_type: str, payload: Mapping[str, Any], now: dt.datetime) -> CallAttempt | None:
    """Apply one Retell event (already stored) to the attempt, item, ledger and follow-ups."""
    call = payload.get("call")
    if not isinstance(call, dict) or not call.get("call_id"):
        log.warning("retell event without a call", extra={"event_type": event_type})
        return None
    if event_type not in KNOWN_EVENTS:
        log.warning("retell event of an unknown type stored", extra={"event_type": event_type, "call_id": call.get("call_id")})
        return None
    if event_type == "transcript_updated":
        return None  # the final transcript comes with call_ended / call_analyzed
    return call_record_apply(call=call, event_type=event_type, now=now)


def call_record_apply(*, call: Mapping[str, Any], event_type: str, now: dt.datetime) -> CallAttempt | None:
    """Merge one Retell call object into our records and resolve its outcome.

    Shared by the webhook and by reconciliation (`event_type="reconcile"`, with the call object
    from get-call), so a lost webhook and a late lookup end in the same state.
    """
    # No savepoint of its own inside the webhook's transaction: any failure aborts all of it.
    with transaction.atomic(savepoint=False):
        return _call_record_apply(call=call, event_type=event_type, now=now)


def _call_record_apply(*, call: Mapping[str, Any], event_type: str, now: dt.datetime) -> CallAttempt | None:
    call_id = str(call["call_id"])
    attempt = _attempt_for_call(call_id=call_id, call=call)
    if attempt is None:
        if call.get("direction") == "inbound":
            _inbound_call_record(call=call, event_type=event_type, now=now)
        else:
            log.warning("retell event for an unknown call", extra={"event_type": event_type, "call_id": call_id})
        return None

    was_not_dialed = attempt.status == CallAttempt.Status.NOT_DIALED
    previous_outcome = attempt.outcome
    before = {name: getattr(attempt, name) for name in _FACT_FIELDS}
    _attempt_merge_facts(attempt, call=call, event_type=event_type)
    transferred = event_type == "transfer_bridged" or attempt.outcome == Outcome.TRANSFERRED
    resolution = call_outcome_resolve(
        call_status=attempt.status,
        disconnection_reason=attempt.disconnection_reason,
        in_voicemail=attempt.in_voicemail,
        transferred=transferred,
    )
    if resolution.unknown_reason and attempt.outcome != Outcome.FAILED:
        log.warning(
            "unknown retell disconnection reason: call counted as failed",
            extra={"call_id": call_id, "disconnection_reason": attempt.disconnection_reason},
        )
    newly_not_dialed = resolution.not_dialed and not was_not_dialed
    if resolution.not_dialed:
        attempt.status = CallAttempt.Status.NOT_DIALED
        attempt.error = f"Retell did not place the call: {attempt.disconnection_reason}"
    elif resolution.outcome:
        attempt.outcome = resolution.outcome
    changed = [name for name, value in before.items() if getattr(attempt, name) != value]
    if changed:
        attempt.save(update_fields=[*changed, "updated_at"])

    if attempt.placement_pending:
        # The release step has not recorded this call yet (it is between Retell's answer and its
        # record, or it crashed there): the item and the counters are not ours to move. What
        # this event said stays on the attempt, and the record (or the recovery) applies it.
        log.info("retell event kept until the call is recorded", extra={"event_type": event_type, "call_id": call_id})
    elif resolution.not_dialed:
        if newly_not_dialed:
            _not_dialed_apply(attempt, now=now)
    elif resolution.outcome:
        _outcome_apply(attempt, now=now, previous_outcome=previous_outcome)

    analysis = call.get("call_analysis")
    if conversation_has_results(analysis) or attempt.disconnection_reason == DNC_REASON:
        conversation_results_apply(
            context=_context_for_attempt(attempt),
            call_id=call_id,
            analysis=analysis if isinstance(analysis, dict) else {},
            disconnection_reason=attempt.disconnection_reason,
            now=now,
        )
    log.info(
        "retell call event applied",
        extra={
            "event_type": event_type,
            "call_id": call_id,
            "status": attempt.status,
            "outcome": attempt.outcome,
            "disconnection_reason": attempt.disconnection_reason,
        },
    )
    return attempt


# The item and campaign columns processing reads: a webhook is a hot path, and compiling and
# loading every column of three wide tables was most of its cost.
_ITEM_COLUMNS = (
    "client_id", "client_name", "phone", "action_type", "state", "team", "phase", "timezones", "segment_id", "campaign_id",
)  # fmt: skip
_CAMPAIGN_COLUMNS = ("date", "status")


def _attempts_locked() -> QuerySet[CallAttempt]:
    """Attempts locked for this transaction, with what processing needs in the same query."""
    newer = CallAttempt.objects.filter(queue_item_id=OuterRef("queue_item_id"), created_at__gt=OuterRef("created_at"))
    attempt_columns = [f.attname for f in CallAttempt._meta.concrete_fields]
    return (
        CallAttempt.objects.select_for_update(of=("self",))
        .select_related("queue_item", "campaign")
        .only(
            *attempt_columns,
            *(f"queue_item__{name}" for name in _ITEM_COLUMNS),
            *(f"campaign__{name}" for name in _CAMPAIGN_COLUMNS),
        )
        .annotate(has_newer_attempt=Exists(newer))
        .order_by()
    )


# What an event can change on an attempt (saved only when it did).
_FACT_FIELDS = (
    "call_id", "status", "outcome", "error", "disconnection_reason", "from_number", "started_at", "ended_at",
    "duration_ms", "transcript", "recording_url", "transfer_destination", "cost", "analyzed", "in_voicemail",
    "summary", "sentiment", "custom_analysis",
)  # fmt: skip


def _attempt_locked(**lookup: Any) -> CallAttempt | None:
    try:
        return _attempts_locked().get(**lookup)
    except CallAttempt.DoesNotExist:
        return None


def _attempt_for_call(*, call_id: str, call: Mapping[str, Any]) -> CallAttempt | None:
    attempt = _attempt_locked(call_id=call_id)
    if attempt is not None:
        return attempt
    # The webhook can beat the create-call response that tells the release code the call_id;
    # the attempt id we sent in the metadata still finds the row.
    attempt_id = str(_object(call.get("metadata")).get("attempt_id") or "")
    try:
        attempt_uuid = uuid.UUID(attempt_id)
    except ValueError:
        return None
    attempt = _attempt_locked(pk=attempt_uuid)
    if attempt is None:
        return None
    if attempt.call_id and attempt.call_id != call_id:
        log.warning("retell call id does not match the attempt's", extra={"call_id": call_id, "attempt_id": attempt_id})
        return None
    return attempt


def _ms_to_datetime(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _object(value: Any) -> dict[str, Any]:
    """A JSON object from the payload, or an empty one when it is anything else."""
    return value if isinstance(value, dict) else {}


def _fit(value: Any, model_field: str, model: type[models.Model] = CallAttempt) -> str:
    max_length = getattr(model._meta.get_field(model_field), "max_length", None)
    text = "" if value is None else str(value)
    return text[:max_length] if max_length else text


def _cost_dollars(call_cost: Any) -> Decimal | None:
    # Retell reports combined_cost in cents; we store dollars.
    if not isinstance(call_cost, dict) or call_cost.get("combined_cost") is None:
        return None
    try:
        cents = Decimal(str(call_cost["combined_cost"]))
    except (InvalidOperation, ValueError):
        return None
    if not cents.is_finite() or not 0 <= cents < MAX_COST_CENTS:
        return None  # not a call's cost; the raw value stays in the stored event
    return (cents / 100).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _attempt_merge_facts(attempt: CallAttempt, *, call: Mapping[str, Any], event_type: str) -> None:
    """Copy what this event says onto the attempt without erasing what earlier events said."""
    if not attempt.call_id:
        attempt.call_id = _fit(call["call_id"], "call_id")
    status = str(call.get("call_status") or "")
    if status in _STATUS_RANK and attempt.status != CallAttempt.Status.NOT_DIALED:
        if _STATUS_RANK[status] > _STATUS_RANK.get(attempt.status, 0):
            attempt.status = status
    elif status and status not in _STATUS_RANK:
        log.warning("unknown retell call status", extra={"call_id": attempt.call_id, "call_status": status})
    reason = str(call.get("disconnection_reason") or "")
    if reason:
        attempt.disconnection_reason = _fit(reason, "disconnection_reason")
    if call.get("from_number") and not attempt.from_number:
        attempt.from_number = _fit(call["from_number"], "from_number")
    started = _ms_to_datetime(call.get("start_timestamp"))
    if started:
        attempt.started_at = started
    ended = _ms_to_datetime(call.get("end_timestamp"))
    if ended:
        attempt.ended_at = ended
    duration = call.get("duration_ms")
    if isinstance(duration, int) and 0 <= duration <= MAX_DURATION_MS:
        attempt.duration_ms = duration
    if call.get("transcript"):
        attempt.transcript = str(call["transcript"])
    recording_url = str(call.get("recording_url") or "")
    if recording_url:
        if len(recording_url) <= 500:
            attempt.recording_url = recording_url
        else:
            log.warning("retell recording url too long to store", extra={"call_id": attempt.call_id})
    if call.get("transfer_destination"):
        attempt.transfer_destination = _fit(call["transfer_destination"], "transfer_destination")
    cost = _cost_dollars(call.get("call_cost"))
    if cost is not None:
        attempt.cost = cost
    analysis = call.get("call_analysis")
    if isinstance(analysis, dict):
        attempt.analyzed = True
        if analysis.get("in_voicemail") is not None:
            attempt.in_voicemail = bool(analysis["in_voicemail"])
        if analysis.get("call_summary"):
            attempt.summary = str(analysis["call_summary"])
        if analysis.get("user_sentiment"):
            attempt.sentiment = _fit(analysis["user_sentiment"], "sentiment")
        if isinstance(analysis.get("custom_analysis_data"), dict):
            attempt.custom_analysis = analysis["custom_analysis_data"]


def _is_latest_attempt(attempt: CallAttempt) -> bool:
    # A late event about an earlier call must not settle the item's newer dial.
    has_newer = getattr(attempt, "has_newer_attempt", None)
    if has_newer is None:
        has_newer = CallAttempt.objects.filter(queue_item_id=attempt.queue_item_id, created_at__gt=attempt.created_at).exists()
    return not has_newer


def _outcome_apply(attempt: CallAttempt, *, now: dt.datetime, previous_outcome: str | None = None) -> bool:
    """Move the item to the attempt's outcome (forward only) and record the contact.

    `previous_outcome` is what the attempt said before this event (None: not known). Returns
    whether this call moved the item."""
    item = attempt.queue_item
    outcome = attempt.outcome
    moved = False
    if _is_latest_attempt(attempt):
        moved = queue_item_transition(
            item_id=item.pk, from_statuses=_OUTCOME_SOURCES, to_status=outcome, last_outcome=outcome
        )
        if item.action_type == ActionType.BOTH:
            _both_item_sms_apply(item_id=item.pk, outcome=outcome, now=now)
        if moved and outcome == Outcome.NO_ANSWER:
            item.refresh_from_db()
            release.queue_item_schedule_retry(item=item, now=now)

    reference = attempt.call_id or str(attempt.pk)
    kinds = [ContactLedgerEntry.Kind.CALL_ATTEMPT]
    if outcome in CONVERSATION_OUTCOMES:
        kinds.append(ContactLedgerEntry.Kind.CONVERSATION)
    # One upsert for the attempt (which the release step may have recorded at dial time, before
    # any outcome) and the conversation: (kind, reference) is unique, so replays add nothing.
    # The conversation is dated when we learn of it, on the same clock as every dial: never
    # earlier than it happened (the blackout can only run longer), and on an accelerated sandbox
    # day not on the simulator's wall-clock timestamps.
    dialed_at = attempt.started_at or attempt.created_at or now
    ContactLedgerEntry.objects.bulk_create(
        [
            ContactLedgerEntry(
                kind=kind,
                reference=reference,
                client_id=item.client_id,
                phone=attempt.to_number or item.phone,
                occurred_at=now if kind == ContactLedgerEntry.Kind.CONVERSATION else dialed_at,
                campaign_date=attempt.campaign.date,
                outcome=outcome,
                state=item.state,
            )
            for kind in kinds
        ],
        update_conflicts=True,
        unique_fields=["kind", "reference"],
        update_fields=["outcome"],
    )
    if outcome not in CONVERSATION_OUTCOMES and previous_outcome in (None, *CONVERSATION_OUTCOMES):
        # `call_ended` said answered, `call_analyzed` found a voicemail: there was no
        # conversation, so it must not start the 7-day blackout.
        removed, _ = ContactLedgerEntry.objects.filter(
            kind=ContactLedgerEntry.Kind.CONVERSATION, reference=reference
        ).delete()
        if removed:
            log.info("conversation withdrawn after refinement", extra={"call_id": attempt.call_id, "outcome": outcome})
    return moved


def _both_item_sms_apply(*, item_id: int, outcome: str, now: dt.datetime) -> None:
    """BOTH items text after a voicemail or no answer; the SMS scheduler applies the window."""
    open_states = QueueItem.objects.filter(pk=item_id, sms_status__in=_SMS_OPEN_STATES)
    if outcome in SMS_FOLLOW_UP_OUTCOMES:
        open_states.exclude(sms_status=QueueItem.SmsStatus.SCHEDULED).update(
            sms_status=QueueItem.SmsStatus.SCHEDULED, sms_due_at=now
        )
    else:
        open_states.exclude(sms_status=QueueItem.SmsStatus.NOT_NEEDED).update(
            sms_status=QueueItem.SmsStatus.NOT_NEEDED, sms_due_at=None
        )


def _not_dialed_apply(attempt: CallAttempt, *, now: dt.datetime) -> None:
    """Retell refused the call (concurrency or payment): back to the queue, and not an attempt.

    Runs once per attempt (the caller holds the attempt's row lock and only comes here when the
    attempt first turns not-dialed), so the release step's bookkeeping of the placed call — the
    ledger's attempt, the campaign's calls placed, the item's attempt count — is undone once.
    """
    item = attempt.queue_item
    if _is_latest_attempt(attempt):
        queue_item_transition(
            item_id=item.pk,
            from_statuses=(S.DIALING,),
            to_status=S.QUEUED,
            next_attempt_at=now + NOT_DIALED_RETRY_DELAY,
        )
        QueueItem.objects.filter(pk=item.pk, call_attempts__gt=0).update(call_attempts=F("call_attempts") - 1)
    # Nobody's phone rang: it must not count toward the 7-in-7 cap.
    ContactLedgerEntry.objects.filter(kind=ContactLedgerEntry.Kind.CALL_ATTEMPT, reference=attempt.call_id).delete()
    Campaign.objects.filter(pk=attempt.campaign_id, calls_placed__gt=0).update(calls_placed=F("calls_placed") - 1)
    if attempt.disconnection_reason == NO_PAYMENT_REASON:
        release.campaign_halt(
            campaign=attempt.campaign,
            reason="Retell reports no valid payment method (no_valid_payment)",
            now=now,
        )


def attempt_fail(*, attempt: CallAttempt, reason: str, now: dt.datetime) -> None:
    """Give up on an attempt nobody can resolve (reconciliation): failed, with the reason kept."""
    with transaction.atomic():
        attempt = _attempts_locked().get(pk=attempt.pk)
        if attempt.outcome or attempt.status == CallAttempt.Status.NOT_DIALED:
            return
        attempt.status = CallAttempt.Status.ERROR
        attempt.outcome = Outcome.FAILED
        attempt.error = reason[:2000]
        attempt.placement_pending = False  # given up: a release step that comes back finds nothing to record
        attempt.save(update_fields=["status", "outcome", "error", "placement_pending", "updated_at"])
        if attempt.call_id:
            _outcome_apply(attempt, now=now)
        elif _is_latest_attempt(attempt):
            # Never registered with Retell: nobody was called, so no ledger entry.
            queue_item_transition(
                item_id=attempt.queue_item_id,
                from_statuses=(S.RELEASING, S.DIALING),
                to_status=S.FAILED,
                last_outcome=Outcome.FAILED,
            )
    log.warning("call attempt failed by reconciliation", extra={"call_id": attempt.call_id, "reason": reason[:300]})


def outcome_reapply(*, attempt: CallAttempt, now: dt.datetime) -> bool:
    """Apply an attempt's known outcome again (it arrived before the call was recorded)."""
    with transaction.atomic():
        attempt = _attempts_locked().get(pk=attempt.pk)
        return bool(attempt.outcome) and _outcome_apply(attempt, now=now)


# --- Inbound calls' own events -----------------------------------------------------------


def _inbound_call_record(*, call: Mapping[str, Any], event_type: str, now: dt.datetime) -> None:
    """An inbound call's call_ended / call_analyzed: outcome on its ledger entry, and follow-ups."""
    call_id = str(call["call_id"])
    entry = ContactLedgerEntry.objects.filter(kind=ContactLedgerEntry.Kind.INBOUND_CALL, reference=call_id).first()
    if entry is None:
        log.info("retell event for an inbound call from an unmatched caller", extra={"event_type": event_type, "call_id": call_id})
        return
    analysis = _object(call.get("call_analysis"))
    resolution = call_outcome_resolve(
        call_status=str(call.get("call_status") or ""),
        disconnection_reason=str(call.get("disconnection_reason") or ""),
        in_voicemail=analysis.get("in_voicemail"),
        transferred=event_type == "transfer_bridged",
    )
    if resolution.outcome and entry.outcome != Outcome.TRANSFERRED:
        ContactLedgerEntry.objects.filter(pk=entry.pk).update(outcome=resolution.outcome)
    if resolution.outcome in CONVERSATION_OUTCOMES:
        ledger_record(
            client_id=entry.client_id,
            phone=entry.phone,
            kind=ContactLedgerEntry.Kind.CONVERSATION,
            reference=call_id,
            occurred_at=entry.occurred_at,
            campaign_date=entry.campaign_date,
            outcome=resolution.outcome,
            state=entry.state,
        )
    if conversation_has_results(analysis) or str(call.get("disconnection_reason") or "") == DNC_REASON:
        conversation_results_apply(
            context=_context_for_client(client_id=entry.client_id, phone=entry.phone, now=now),
            call_id=call_id,
            analysis=analysis,
            disconnection_reason=str(call.get("disconnection_reason") or ""),
            now=now,
        )


# =============================================================================================
# 3. What the conversation produced
# =============================================================================================

FOLLOW_UP_DUE: dict[str, dt.timedelta] = {
    # Legal threats and vulnerable customers need a trained person the same day.
    FollowUpTask.Kind.LEGAL_LANGUAGE: dt.timedelta(hours=4),
    FollowUpTask.Kind.VULNERABLE_CUSTOMER: dt.timedelta(hours=4),
    FollowUpTask.Kind.DISPUTE: dt.timedelta(days=1),
    FollowUpTask.Kind.CANCELLATION_REQUEST: dt.timedelta(days=1),
    FollowUpTask.Kind.HARDSHIP: dt.timedelta(days=2),
    FollowUpTask.Kind.BROKEN_PROMISE: dt.timedelta(days=1),
    FollowUpTask.Kind.LOW_CONFIDENCE_MATCH: dt.timedelta(days=1),
}

# custom_analysis_data flag → follow-up task kind (the callback and the promise are separate).
ESCALATION_FIELDS: dict[str, str] = {
    "dispute": FollowUpTask.Kind.DISPUTE,
    "hardship": FollowUpTask.Kind.HARDSHIP,
    "cancellation_request": FollowUpTask.Kind.CANCELLATION_REQUEST,
    "legal_language": FollowUpTask.Kind.LEGAL_LANGUAGE,
    "vulnerable_customer": FollowUpTask.Kind.VULNERABLE_CUSTOMER,
}
_ATTORNEY_WORDS = re.compile(r"\b(attorney|attorneys|lawyer|lawyers|counsel|law firm|legal representation)\b", re.I)
_FALSE_WORDS = frozenset({"", "no", "false", "none", "n/a", "na", "null", "0", "unknown", "not applicable"})
PROMISE_REMINDER_TIME = dt.time(9, 0)
# A callback asked for further out than this is not a time to schedule (a misheard year, say):
# the task is due now, with the words as spoken, for an agent to read.
CALLBACK_HORIZON = dt.timedelta(days=60)


@dataclass(frozen=True)
class ClientContext:
    """Who a conversation was with, as far as we know them."""

    client_id: str
    phone: str
    client_name: str = ""
    team: str = "billing"
    segment_name: str = ""
    phase: str = ""
    timezones: list[str] = field(default_factory=list)
    queue_item_id: int | None = None


def _context_for_attempt(attempt: CallAttempt) -> ClientContext:
    item = attempt.queue_item
    return ClientContext(
        client_id=item.client_id,
        phone=attempt.to_number or item.phone,
        client_name=item.client_name,
        team=item.team,
        segment_name=item.segment.name,
        phase=item.phase,
        timezones=item.timezone_list,
        queue_item_id=item.pk,
    )


def _context_for_client(*, client_id: str, phone: str, now: dt.datetime) -> ClientContext:
    item = (
        QueueItem.objects.select_related("segment")
        .filter(client_id=client_id)
        .order_by("-campaign__date")
        .first()
    )
    if item is None:
        return ClientContext(client_id=client_id, phone=phone)
    return ClientContext(
        client_id=client_id,
        phone=phone or item.phone,
        client_name=item.client_name,
        team=item.team,
        segment_name=item.segment.name,
        phase=item.phase,
        timezones=item.timezone_list,
        queue_item_id=item.pk if item.campaign.date == timezone.localdate(now) else None,
    )


def analysis_flag(value: Any) -> tuple[bool, str]:
    """(is set, detail text) for a Boolean, Selector or Text post-call analysis value."""
    if isinstance(value, bool):
        return value, ""
    if isinstance(value, (int, float)):
        return value != 0, ""
    if isinstance(value, str):
        text = value.strip()
        if text.casefold() in _FALSE_WORDS:
            return False, ""
        if text.casefold() in {"yes", "true", "y", "1"}:
            return True, ""
        return True, text
    return False, ""


def parse_promise_amount(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    text = re.sub(r"[,$\s]|USD", "", str(value), flags=re.I)
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount <= 0 or amount >= Decimal("10000000000"):
        return None
    amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return amount if amount > 0 else None  # "0.004" is no promise of money


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y")
_DATE_FORMATS_NO_YEAR = ("%B %d", "%b %d", "%m/%d")


def parse_promise_date(value: Any, *, today: dt.date) -> dt.date | None:
    """A promised payment date from the analysis text; a date without a year is the next one."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", value.strip())
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    for fmt in _DATE_FORMATS_NO_YEAR:
        try:
            parsed = dt.datetime.strptime(f"{text} {today.year}", f"{fmt} %Y").date()
        except ValueError:
            continue
        if parsed >= today:
            return parsed
        try:
            return parsed.replace(year=today.year + 1)
        except ValueError:  # Feb 29 asked for after this leap year's: next year has none
            return None
    return None


def _zone(context: ClientContext) -> zoneinfo.ZoneInfo:
    for name in context.timezones:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def parse_callback_time(value: Any, *, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        parsed.astimezone(dt.timezone.utc)  # 9999-12-31T23:00-05:00 is past the last UTC instant
    except OverflowError:
        return None
    return parsed


def _task_create(
    *, kind: str, context: ClientContext, source_ref: str, due_at: dt.datetime, detail: str
) -> FollowUpTask:
    task, created = FollowUpTask.objects.get_or_create(
        kind=kind,
        source_ref=source_ref,
        defaults={
            "team": context.team or "billing",
            "client_id": context.client_id,
            "client_name": context.client_name,
            "phone": context.phone,
            "due_at": due_at,
            "detail": detail,
        },
    )
    if created:
        log.info("follow-up task created", extra={"kind": kind, "client_id": context.client_id, "source_ref": source_ref})
    return task


def conversation_has_results(analysis: Any) -> bool:
    """Whether a call analysis asks for anything (most calls: nothing, and no query is spent)."""
    data = analysis.get("custom_analysis_data") if isinstance(analysis, dict) else None
    if not isinstance(data, dict):
        return False
    flags = ("user_requested_dnc", "callback_requested", *ESCALATION_FIELDS)
    if any(analysis_flag(data.get(name))[0] for name in flags):
        return True
    return any(data.get(name) not in (None, "") for name in ("callback_time", "promise_to_pay_date"))


def conversation_results_apply(
    *,
    context: ClientContext,
    call_id: str,
    analysis: Mapping[str, Any],
    disconnection_reason: str,
    now: dt.datetime,
) -> None:
    """Promise to pay, escalations, callback and do-not-call from one analysed call (idempotent)."""
    data = analysis.get("custom_analysis_data")
    data = data if isinstance(data, dict) else {}
    summary = str(analysis.get("call_summary") or "")

    def suppress(reason: str, channel: str, note: str) -> None:
        suppression_add(
            reason=reason, channel=channel, source=f"retell:{call_id}", client_id=context.client_id, phone=context.phone, note=note
        )

    dnc, _ = analysis_flag(data.get("user_requested_dnc"))
    if dnc or disconnection_reason == DNC_REASON:
        suppress(Suppression.Reason.DO_NOT_CALL, Suppression.Channel.CALL, "Client asked not to be called.")

    for field_name, kind in ESCALATION_FIELDS.items():
        is_set, detail = analysis_flag(data.get(field_name))
        if not is_set:
            continue
        _task_create(
            kind=kind,
            context=context,
            source_ref=call_id,
            due_at=now + FOLLOW_UP_DUE[kind],
            detail="\n\n".join(part for part in (detail, summary) if part),
        )
        if kind == FollowUpTask.Kind.DISPUTE:
            suppress(
                Suppression.Reason.DISPUTE_HOLD,
                Suppression.Channel.ALL,
                detail or "Dispute raised on a call; outreach on hold until it is resolved.",
            )
        if kind == FollowUpTask.Kind.LEGAL_LANGUAGE and _ATTORNEY_WORDS.search(detail):
            suppress(Suppression.Reason.ATTORNEY, Suppression.Channel.ALL, detail)

    callback_requested, _ = analysis_flag(data.get("callback_requested"))
    callback_text = data.get("callback_time")
    if callback_requested or (isinstance(callback_text, str) and callback_text.strip()):
        _callback_schedule(context=context, call_id=call_id, callback_text=callback_text, summary=summary, now=now)

    if data.get("promise_to_pay_date") not in (None, ""):
        _promise_record(context=context, call_id=call_id, data=data, now=now)


def callback_due_at(*, callback_text: Any, context: ClientContext, now: dt.datetime) -> dt.datetime:
    """When a requested callback is due (pure): the time asked for, or now when none is usable,
    moved through the gate's own window rule to the first instant inside 08:00–21:00 in every
    candidate zone of the client (as requested when the zones are unusable)."""
    requested = parse_callback_time(callback_text, zone=_zone(context))
    if requested is None or requested < now or requested > now + CALLBACK_HORIZON:
        requested = now
    return (
        compliance.next_window_open(timezones=context.timezones, now=requested, start=LEGAL_WINDOW[0], end=LEGAL_WINDOW[1])
        or requested
    )


def _callback_schedule(
    *, context: ClientContext, call_id: str, callback_text: Any, summary: str, now: dt.datetime
) -> None:
    due_at = callback_due_at(callback_text=callback_text, context=context, now=now)
    detail = f"Callback requested for {callback_text!s}." if callback_text else "Callback requested (no time given)."
    _task_create(
        kind=FollowUpTask.Kind.CALLBACK_REQUEST,
        context=context,
        source_ref=call_id,
        due_at=due_at,
        detail="\n\n".join(part for part in (detail, summary) if part),
    )
    if context.queue_item_id is not None:
        # The release gate still applies every rule (window, caps, blackout) when it is due.
        QueueItem.objects.filter(pk=context.queue_item_id).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=due_at)
        ).update(next_attempt_at=due_at)


def _promise_record(*, context: ClientContext, call_id: str, data: Mapping[str, Any], now: dt.datetime) -> None:
    zone = _zone(context)
    today = now.astimezone(zone).date()
    promised = parse_promise_date(data.get("promise_to_pay_date"), today=today)
    if promised is None or promised < today:
        log.warning(
            "promise to pay with an unusable date not recorded",
            extra={"call_id": call_id, "promise_to_pay_date": str(data.get("promise_to_pay_date"))[:40]},
        )
        return
    reminder_at: dt.datetime | None = dt.datetime.combine(
        promised - dt.timedelta(days=1), PROMISE_REMINDER_TIME, tzinfo=zone
    )
    if reminder_at is not None and reminder_at <= now:
        reminder_at = None  # promised for today or tomorrow morning already passed: nothing to remind
    _, created = PromiseToPay.objects.get_or_create(
        call_id=call_id,
        defaults={
            "client_id": context.client_id,
            "client_name": context.client_name,
            "phone": context.phone,
            "segment_name": context.segment_name,
            "phase": context.phase,
            "amount": parse_promise_amount(data.get("promise_to_pay_amount")),
            "promised_date": promised,
            "reminder_at": reminder_at,
        },
    )
    if created:
        log.info("promise to pay recorded", extra={"call_id": call_id, "client_id": context.client_id, "promised_date": promised.isoformat()})


# --- Promise review ----------------------------------------------------------------------


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
            _task_create(
                kind=FollowUpTask.Kind.BROKEN_PROMISE,
                context=ClientContext(
                    client_id=promise.client_id,
                    phone=promise.phone,
                    client_name=promise.client_name,
                    team=_team_for_phase(promise.phase),
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


def _team_for_phase(phase: str) -> str:
    return "resurrection" if phase in RESURRECTION_PHASES else "billing"


# --- Follow-up tasks: the supervisor's actions ----------------------------------------------------


def follow_up_tasks_assign(*, tasks: QuerySet[FollowUpTask], owner: Any) -> int:
    """Give open tasks an owner; tasks already done are left alone."""
    return tasks.exclude(status=FollowUpTask.Status.DONE).update(owner=owner)


def follow_up_tasks_start(*, tasks: QuerySet[FollowUpTask]) -> int:
    return tasks.filter(status=FollowUpTask.Status.OPEN).update(status=FollowUpTask.Status.IN_PROGRESS)


def follow_up_tasks_close(*, tasks: QuerySet[FollowUpTask], now: dt.datetime) -> int:
    return tasks.exclude(status=FollowUpTask.Status.DONE).update(status=FollowUpTask.Status.DONE, resolved_at=now)
