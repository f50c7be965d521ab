"""The contact ledger and suppressions: what the frequency caps and channel blocks read.

Both outlive the daily queue cleanup. Writes are idempotent — a ledger entry is unique on
(kind, reference) and a suppression is not duplicated while an identical one is active — so a
webhook replayed three times leaves one entry.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import Q

from campaigns.models import ContactLedgerEntry, Suppression
from integrations import clock

log = logging.getLogger(__name__)

# Which suppression reasons block which channel. A channel-"all" suppression blocks everything.
CHANNEL_BLOCKING_REASONS = {
    "call": {
        Suppression.Reason.DO_NOT_CALL,
        Suppression.Reason.CEASE_COMMUNICATION,
        Suppression.Reason.DISPUTE_HOLD,
        Suppression.Reason.ATTORNEY,
    },
    "sms": {
        Suppression.Reason.SMS_OPT_OUT,
        Suppression.Reason.CEASE_COMMUNICATION,
        Suppression.Reason.DISPUTE_HOLD,
        Suppression.Reason.ATTORNEY,
    },
}


def ledger_record(
    *,
    client_id: str,
    phone: str,
    kind: str,
    reference: str,
    occurred_at: dt.datetime | None = None,
    campaign_date: dt.date | None = None,
    outcome: str = "",
    state: str = "",
) -> bool:
    """Add one contact to the ledger; returns False when it was already there."""
    _, created = ContactLedgerEntry.objects.get_or_create(
        kind=kind,
        reference=reference,
        defaults={
            "client_id": client_id,
            "phone": phone,
            "occurred_at": occurred_at or clock.now(),
            "campaign_date": campaign_date,
            "outcome": outcome,
            "state": state,
        },
    )
    return created


def suppression_add(
    *,
    reason: str,
    channel: str,
    source: str,
    client_id: str = "",
    phone: str = "",
    note: str = "",
) -> Suppression:
    """Suppress a client and/or phone on a channel, unless an identical suppression is active."""
    if not client_id and not phone:
        raise ValueError("A suppression needs a client id or a phone number.")
    with transaction.atomic():
        existing = Suppression.objects.filter(
            client_id=client_id, phone=phone, channel=channel, reason=reason, lifted_at__isnull=True
        ).first()
        if existing is not None:
            return existing
        suppression = Suppression.objects.create(
            client_id=client_id, phone=phone, channel=channel, reason=reason, source=source, note=note
        )
    log.info("suppression added", extra={"reason": reason, "channel": channel, "client_id": client_id, "phone": phone})
    return suppression


def suppression_lift(*, reason: str, lifted_by: str, client_id: str = "", phone: str = "") -> int:
    """Lift the active suppressions of `reason` for a client or phone; returns how many."""
    query = Q()
    if client_id:
        query |= Q(client_id=client_id)
    if phone:
        query |= Q(phone=phone)
    if not query:
        return 0
    lifted = Suppression.objects.filter(query, reason=reason, lifted_at__isnull=True).update(
        lifted_at=clock.now(), lifted_by=lifted_by
    )
    if lifted:
        log.info("suppression lifted", extra={"reason": reason, "client_id": client_id, "phone": phone})
    return lifted


def active_suppressions_q(*, channel: str) -> Q:
    """Filter for active suppressions that block `channel` ("call" or "sms")."""
    return Q(lifted_at__isnull=True) & (
        Q(channel=Suppression.Channel.ALL) | Q(channel=channel)
    ) & Q(reason__in=CHANNEL_BLOCKING_REASONS[channel])
