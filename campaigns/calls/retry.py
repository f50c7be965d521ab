"""When a call does not happen: not dialed by Retell, the retry curve, and the campaign halt.

Both the release step (Retell answers create-call, or reports before the call is recorded) and
the outcome step (a webhook says Retell never dialed) end here, so a call Retell did not place
is handled one way whichever of them learns of it first.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db.models import F
from django.utils import timezone

from cadences.models import ActionType, DialerSettings
from campaigns.alerts import alert_raise
from campaigns.compliance import gate as compliance
from campaigns.models import CallAttempt, Campaign, ContactLedgerEntry, QueueItem
from campaigns.transitions import queue_item_transition

log = logging.getLogger(__name__)

S = QueueItem.Status

CALL_ACTIONS = (ActionType.CALL, ActionType.BOTH)

# Reference: https://docs.retellai.com/reliability/debug-call-disconnect
RETELL_RATE_LIMIT_REASONS = frozenset({"concurrency_limit_reached"})
RETELL_PAYMENT_REASONS = frozenset({"no_valid_payment"})
NOT_DIALED_REASONS = RETELL_RATE_LIMIT_REASONS | RETELL_PAYMENT_REASONS
NO_PAYMENT_HALT_REASON = "Retell reports no valid payment method (no_valid_payment)"
NOT_DIALED_RETRY_DELAY = dt.timedelta(seconds=60)


def campaign_day_end(campaign: Campaign) -> dt.datetime:
    return dt.datetime.combine(campaign.date, campaign.end_of_day, tzinfo=timezone.get_current_timezone())


def campaign_halt(*, campaign: Campaign, reason: str, now: dt.datetime) -> bool:
    """Pause a running campaign on its own (e.g. Retell payment failure) and tell the supervisor."""
    paused = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.RUNNING).update(
        status=Campaign.Status.PAUSED, halt_reason=reason[:2000]
    )
    if paused:
        alert_raise(
            campaign=campaign, source="retell", message=f"Calling paused: {reason}. Fix the Retell account, then resume the campaign."
        )
        log.error("campaign halted", extra={"campaign_id": campaign.pk, "reason": reason})
    return bool(paused)


def call_not_dialed(
    *, attempt: CallAttempt, campaign: Campaign, reason: str, now: dt.datetime, counted: bool, move_item: bool = True
) -> None:
    """Retell did not dial (concurrency or payment): the item is queued again and nothing counts.

    `counted` says whether the call had already been recorded as placed (dialing, one attempt on
    the item, one call placed, one ledger attempt); that bookkeeping is undone here, once, since
    the caller holds the attempt's row lock and only comes here when the attempt first turns
    not-dialed. `move_item` is False for a late event about an older dial of the item.
    """
    if move_item:
        queue_item_transition(
            item_id=attempt.day_item_id,
            from_statuses=(S.DIALING,) if counted else (S.RELEASING,),
            to_status=S.QUEUED,
            next_attempt_at=now + NOT_DIALED_RETRY_DELAY,
        )
    if counted:
        if move_item:
            QueueItem.objects.filter(pk=attempt.day_item_id, call_attempts__gt=0).update(call_attempts=F("call_attempts") - 1)
        # Nobody's phone rang: it must not count toward the 7-in-7 cap.
        ContactLedgerEntry.objects.filter(kind=ContactLedgerEntry.Kind.CALL_ATTEMPT, reference=attempt.call_id).delete()
        Campaign.objects.filter(pk=campaign.pk, calls_placed__gt=0).update(calls_placed=F("calls_placed") - 1)
    log.warning("call not dialed by Retell", extra={"attempt_id": str(attempt.pk), "queue_item_id": attempt.queue_item_id, "reason": reason})
    if reason in RETELL_PAYMENT_REASONS:
        campaign_halt(campaign=campaign, reason=NO_PAYMENT_HALT_REASON, now=now)


def queue_item_schedule_retry(*, item: QueueItem, now: dt.datetime) -> bool:
    """After a no-answer (or busy): back to the queue after the retry delay, if today allows.

    Allowed while the item has had fewer than `max_call_attempts_per_day` attempts and the
    client's window opens again (at or after the delay) before the campaign day ends. The gate
    runs again when the item comes up. Voicemail is never retried: it is not a no-answer.
    """
    item.refresh_from_db()
    if item.status != S.NO_ANSWER or item.action_type not in CALL_ACTIONS:
        return False
    dialer = DialerSettings.load()
    if item.call_attempts >= dialer.max_call_attempts_per_day:
        return False
    campaign = item.campaign
    if campaign.status not in (Campaign.Status.RUNNING, Campaign.Status.PAUSED):
        return False
    retry_at = now + dt.timedelta(minutes=dialer.retry_delay_minutes)
    opens = compliance.next_window_open(
        timezones=item.timezone_list, now=retry_at, start=campaign.calling_window_start, end=campaign.calling_window_end
    )
    if opens is None or opens >= campaign_day_end(campaign):
        return False
    moved = queue_item_transition(item_id=item.pk, from_statuses=[S.NO_ANSWER], to_status=S.QUEUED, next_attempt_at=opens)
    if moved:
        log.info("no-answer retry scheduled", extra={"queue_item_id": item.pk, "retry_at": opens.isoformat(), "attempts": item.call_attempts})
    return moved
