"""Forward-only queue item status changes, with the campaign counters moved in the same step.

Every status change goes through `queue_item_transition`: a conditional UPDATE that only
succeeds from the expected statuses. Exactly one caller wins it, so a duplicate webhook, a
retried task or a second worker can neither move an item backwards nor count it twice, and the
campaign counters always equal a recount from the items.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, F

from campaigns.models import Campaign, QueueItem
from integrations import clock

S = QueueItem.Status

# The counter on Campaign that each final status moves.
STATUS_COUNTERS: dict[str, str] = {
    S.ANSWERED: "answered",
    S.VOICEMAIL: "voicemail",
    S.TRANSFERRED: "transferred",
    S.NO_ANSWER: "no_answer",
    S.FAILED: "failed",
    S.SMS_SENT: "sms_sent",
    S.SMS_FAILED: "sms_failed",
    S.SKIPPED: "skipped",
    S.INELIGIBLE: "ineligible",
}

# The SMS counters follow the item's `sms_status` (see campaign_recount).
SMS_COUNTERS: dict[str, str] = {"sms_sent": QueueItem.SmsStatus.SENT, "sms_failed": QueueItem.SmsStatus.FAILED}

# Where each status may go. Outcomes can still be refined (a `call_analyzed` turning an
# "answered" into "voicemail"), which is why answered → voicemail is allowed; the counter
# moves from one to the other in the same transaction.
ALLOWED: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.RELEASING, S.SMS_SCHEDULED, S.INELIGIBLE, S.SKIPPED}),
    S.RELEASING: frozenset({S.DIALING, S.QUEUED, S.FAILED, S.SKIPPED}),
    S.DIALING: frozenset({S.ANSWERED, S.VOICEMAIL, S.TRANSFERRED, S.NO_ANSWER, S.FAILED, S.QUEUED}),
    S.ANSWERED: frozenset({S.VOICEMAIL, S.TRANSFERRED}),
    S.VOICEMAIL: frozenset({S.TRANSFERRED}),
    S.NO_ANSWER: frozenset({S.QUEUED}),
    S.SMS_SCHEDULED: frozenset({S.SMS_SENT, S.SMS_FAILED, S.SKIPPED, S.INELIGIBLE}),
}


def queue_item_transition(
    *,
    item_id: int,
    from_statuses: Iterable[str],
    to_status: str,
    **fields: object,
) -> bool:
    """Move one item from any of `from_statuses` to `to_status`; True if this call did it.

    Extra keyword arguments are written to the item in the same UPDATE. Counters of the
    campaign move in the same transaction: the old final status's counter down, the new one up.
    """
    sources = [s for s in from_statuses if to_status in ALLOWED.get(s, frozenset())]
    if not sources:
        raise ValueError(f"No allowed transition from {list(from_statuses)} to {to_status}")
    with transaction.atomic():
        row = (
            QueueItem.objects.filter(pk=item_id, status__in=sources)
            .values_list("status", "campaign_id")
            .first()
        )
        if row is None:
            return False
        old_status, campaign_id = row
        moved = QueueItem.objects.filter(pk=item_id, status=old_status).update(
            status=to_status, status_changed_at=clock.now(), **fields
        )
        if moved != 1:
            return False
        counter_changes: dict[str, object] = {}
        if old_status in STATUS_COUNTERS:
            counter_changes[STATUS_COUNTERS[old_status]] = F(STATUS_COUNTERS[old_status]) - 1
        if to_status in STATUS_COUNTERS:
            counter_changes[STATUS_COUNTERS[to_status]] = F(STATUS_COUNTERS[to_status]) + 1
        if counter_changes:
            Campaign.objects.filter(pk=campaign_id).update(**counter_changes)
    return True


def campaign_recount(*, campaign: Campaign) -> dict[str, int]:
    """Counters recomputed from the items (for checks and the invariant tests).

    Texts are counted by `sms_status`, which both kinds of item carry: an SMS-only touchpoint
    and the follow-up text of a call-and-SMS touchpoint each count once.
    """
    counts = dict.fromkeys(set(STATUS_COUNTERS.values()), 0)
    items = QueueItem.objects.filter(campaign=campaign)
    for status, n in items.values_list("status").annotate(n=Count("pk")):
        if status in STATUS_COUNTERS and STATUS_COUNTERS[status] not in SMS_COUNTERS:
            counts[STATUS_COUNTERS[status]] += n
    for sms_status, n in items.values_list("sms_status").annotate(n=Count("pk")):
        if sms_status in SMS_COUNTERS.values():
            counts[next(k for k, v in SMS_COUNTERS.items() if v == sms_status)] += n
    return counts
