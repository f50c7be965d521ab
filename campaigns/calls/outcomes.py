"""Retell call events resolved into outcomes: what happened to each dial.

The facts of every event (status, disconnection reason, voicemail flag, transfer) are merged into
the `CallAttempt`, never erasing what an earlier event said, and the outcome is recomputed from
the merged facts by DESIGN.md's precedence: transfer → voicemail → not connected (no answer or
failed) → error → answered. Because the outcome is a function of everything seen so far,
`call_analyzed` arriving before `call_ended` gives the same result as the other way round, and a
duplicate changes nothing. The queue item moves forward only (`queue_item_transition`), which
also moves the campaign counters exactly once.

What the conversation produced (promises, escalations, callbacks) is the next step's:
`campaigns.conversations.results`. Storing and retrying the events is the inbox's:
`campaigns.webhooks.inbox`.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import models, transaction
from django.db.models import Exists, OuterRef, QuerySet

from cadences.models import ActionType
from campaigns.calls import retry
from campaigns.compliance.ledger import ledger_record
from campaigns.models import CallAttempt, ContactLedgerEntry, QueueItem
from campaigns.queue import identity
from campaigns.transitions import queue_item_transition
from integrations import clock, http

log = logging.getLogger(__name__)

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
NOT_DIALED_REASONS = retry.NOT_DIALED_REASONS
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

# What the attempt's columns hold (PositiveIntegerField; DecimalField(10, 4) in dollars).
MAX_DURATION_MS = 2**31 - 1
MAX_COST_CENTS = Decimal(10**8)


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


@dataclass(frozen=True)
class CallRecord:
    """Whose call an event was about, for the step that acts on what the conversation produced."""

    client_id: str
    phone: str
    disconnection_reason: str
    attempt: CallAttempt | None = None  # None for an inbound call


def call_record_apply(*, call: Mapping[str, Any], event_type: str, now: dt.datetime) -> CallRecord | None:
    """Merge one Retell call object into our records and resolve its outcome; None for a call
    that is not ours (unknown id, an unmatched inbound caller).

    Shared by the webhook and by reconciliation (`event_type="reconcile"`, with the call object
    from get-call), so a lost webhook and a late lookup end in the same state.
    """
    # No savepoint of its own inside the caller's transaction: any failure aborts all of it.
    with transaction.atomic(savepoint=False):
        return _call_record_apply(call=call, event_type=event_type, now=now)


def _call_record_apply(*, call: Mapping[str, Any], event_type: str, now: dt.datetime) -> CallRecord | None:
    call_id = str(call["call_id"])
    attempt = _attempt_for_call(call_id=call_id, call=call)
    if attempt is None:
        log.warning("retell event for an unknown call", extra={"event_type": event_type, "call_id": call_id, "direction": call.get("direction")})
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

    if attempt.kind == CallAttempt.Kind.INBOUND:
        if resolution.outcome:
            _inbound_outcome_apply(attempt, now=now)
    elif attempt.queue_item_id is None:
        # The day was flushed before this (late) event: its facts are kept on the attempt and
        # the ledger learns the outcome; there is no queue item left to move.
        if resolution.outcome:
            _ledger_outcome_record(attempt, outcome=attempt.outcome, now=now, previous_outcome=previous_outcome)
    elif attempt.placement_pending:
        # The release step has not recorded this call yet (it is between Retell's answer and its
        # record, or it crashed there): the item and the counters are not ours to move. What
        # this event said stays on the attempt, and the record (or the recovery) applies it.
        log.info("retell event kept until the call is recorded", extra={"event_type": event_type, "call_id": call_id})
    elif resolution.not_dialed:
        if newly_not_dialed:
            _not_dialed_apply(attempt, now=now)
    elif resolution.outcome:
        _outcome_apply(attempt, now=now, previous_outcome=previous_outcome)
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
    return CallRecord(
        client_id=attempt.client_id,
        phone=attempt.client_phone,
        disconnection_reason=attempt.disconnection_reason,
        attempt=attempt,
    )


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
    # Retell's timestamps, on the campaign's clock (the same instants unless a sandbox day runs
    # its clock faster than the simulators' wall clock).
    started = _ms_to_datetime(call.get("start_timestamp"))
    if started:
        attempt.started_at = clock.at(started)
    ended = _ms_to_datetime(call.get("end_timestamp"))
    if ended:
        attempt.ended_at = clock.at(ended)
    duration = call.get("duration_ms")
    if isinstance(duration, int) and 0 <= duration <= MAX_DURATION_MS:
        attempt.duration_ms = duration
    if clock.speed() != 1.0 and attempt.started_at and attempt.ended_at and attempt.ended_at >= attempt.started_at:
        # On an accelerated sandbox day the call lasted what its start and end say on the day's
        # clock, not the simulator's few real seconds.
        attempt.duration_ms = min(int((attempt.ended_at - attempt.started_at).total_seconds() * 1000), MAX_DURATION_MS)
    if call.get("transcript"):
        # Without what the caller said to verify their identity (events stored before the inbox
        # withheld it are scrubbed here too).
        attempt.transcript = identity.transcript_withheld(str(call["transcript"]))
    recording_url = str(call.get("recording_url") or "")
    if recording_url:
        if not http.is_web_url(recording_url):
            # The timeline links to it: only a web address is a recording (never javascript:).
            log.warning("retell recording url refused: not http(s)", extra={"call_id": attempt.call_id})
        elif len(recording_url) <= 500:
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
    item = attempt.day_item
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
            retry.queue_item_schedule_retry(item=item, now=now)
    _ledger_outcome_record(attempt, outcome=outcome, now=now, previous_outcome=previous_outcome, state=item.state)
    return moved


def _ledger_outcome_record(
    attempt: CallAttempt, *, outcome: str, now: dt.datetime, previous_outcome: str | None, state: str = ""
) -> None:
    """The attempt's outcome on the contact ledger, and its conversation when there was one."""
    reference = attempt.call_id or str(attempt.pk)
    kinds = [ContactLedgerEntry.Kind.CALL_ATTEMPT]
    if outcome in CONVERSATION_OUTCOMES:
        kinds.append(ContactLedgerEntry.Kind.CONVERSATION)
    # One upsert for the attempt (which the release step may have recorded at dial time, before
    # any outcome) and the conversation: (kind, reference) is unique, so replays add nothing.
    # The conversation is dated when we learn of it, on the same clock as every dial: never
    # earlier than it happened (the blackout can only run longer), and on an accelerated sandbox
    # day not on the simulator's wall-clock timestamps.
    dialed_at = attempt.placed_at or now
    ContactLedgerEntry.objects.bulk_create(
        [
            ContactLedgerEntry(
                kind=kind,
                reference=reference,
                client_id=attempt.client_id,
                phone=attempt.to_number,
                occurred_at=now if kind == ContactLedgerEntry.Kind.CONVERSATION else dialed_at,
                campaign_date=attempt.campaign.date if attempt.campaign is not None else None,
                outcome=outcome,
                state=state,
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
    """Retell refused the call (concurrency or payment) after the release step recorded it."""
    retry.call_not_dialed(
        attempt=attempt,
        campaign=attempt.day_campaign,
        reason=attempt.disconnection_reason,
        now=now,
        counted=True,
        move_item=_is_latest_attempt(attempt),
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
                item_id=attempt.day_item_id,
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


def _inbound_outcome_apply(attempt: CallAttempt, *, now: dt.datetime) -> None:
    """An inbound call's outcome on its ledger entry, and its conversation when it was one."""
    entry = ContactLedgerEntry.objects.filter(kind=ContactLedgerEntry.Kind.INBOUND_CALL, reference=attempt.call_id).first()
    if entry is None:
        return
    if entry.outcome != Outcome.TRANSFERRED:
        ContactLedgerEntry.objects.filter(pk=entry.pk).update(outcome=attempt.outcome)
    if attempt.outcome in CONVERSATION_OUTCOMES:
        ledger_record(
            client_id=entry.client_id,
            phone=entry.phone,
            kind=ContactLedgerEntry.Kind.CONVERSATION,
            reference=attempt.call_id or str(attempt.pk),
            occurred_at=entry.occurred_at,
            campaign_date=entry.campaign_date,
            outcome=attempt.outcome,
            state=entry.state,
        )
