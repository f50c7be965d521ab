"""Inbound calls: who is calling, what Grace should know, and keeping the dialer off them today.

Retell asks, before the agent answers, for the caller's dynamic variables (seed 001: "caller
matched to account, context loaded"). The caller's number is matched to a client from today's
queue first (it has everything: name, amount, phase), else from the contact ledger (a client we
contacted before; fewer details). A number shared by several clients is not disclosed to anyone:
the agent gets the generic variables and a person gets a low-confidence-match task, because
talking about a debt to the wrong person is itself a violation.

A matched client gets an `inbound_call` ledger entry. The compliance gate reads it: no outbound
call to that client for the rest of the day, and the conversation blackout starts from it.

Reference: https://docs.retellai.com/features/inbound-call-webhook
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from cadences.models import RESURRECTION_PHASES, Phase
from campaigns.geo import GeoError, phone_to_e164
from campaigns.models import FOLLOW_UP_DUE, ContactLedgerEntry, FollowUpTask, QueueItem, WebhookEvent
from campaigns.compliance.ledger import ledger_record

log = logging.getLogger(__name__)

# Every key is always present (Retell fills prompt placeholders from them); values are strings.
GENERIC_VARIABLES: dict[str, str] = {
    "known_caller": "false",
    "client_name": "",
    "first_name": "",
    "amount_due": "",
    "days_past_due": "",
    "account_status": "unknown",
    "phase": "",
    "last_outcome": "none",
    "transfer_number": "",
    "payment_link": "",
}

# How far back the ledger is searched for a caller (the ledger keeps about 400 days).
LEDGER_MATCH_DAYS = 400


class MalformedInbound(ValueError):
    """The body is JSON but not a Retell inbound-call request."""


@dataclass(frozen=True)
class CallerMatch:
    source: str  # "queue", "ledger", "ambiguous" or "none"
    client_id: str = ""
    item: QueueItem | None = None
    candidates: tuple[str, ...] = ()


def caller_match(*, phone: str, now: dt.datetime) -> CallerMatch:
    """The one client this number belongs to, from today's queue or else the ledger."""
    if not phone:
        return CallerMatch("none")
    today = timezone.localdate(now)
    items = list(
        QueueItem.objects.select_related("segment")
        .filter(campaign__date=today, phone=phone)
        .order_by("pk")
    )
    clients = sorted({item.client_id for item in items})
    if len(clients) == 1:
        return CallerMatch("queue", client_id=clients[0], item=items[0])
    if len(clients) > 1:
        return CallerMatch("ambiguous", candidates=tuple(clients))
    ledger_clients = sorted(
        set(
            ContactLedgerEntry.objects.filter(phone=phone, occurred_at__gte=now - dt.timedelta(days=LEDGER_MATCH_DAYS))
            .values_list("client_id", flat=True)
            .distinct()
        )
    )
    if len(ledger_clients) == 1:
        return CallerMatch("ledger", client_id=ledger_clients[0])
    if len(ledger_clients) > 1:
        return CallerMatch("ambiguous", candidates=tuple(ledger_clients))
    return CallerMatch("none")


def _money(amount: Decimal | None) -> str:
    return "" if amount is None else f"{amount:,.2f}"


def _last_outcome(client_id: str) -> str:
    outcome = (
        ContactLedgerEntry.objects.filter(client_id=client_id)
        .exclude(outcome="")
        .exclude(kind=ContactLedgerEntry.Kind.SMS)
        .order_by("-occurred_at")
        .values_list("outcome", flat=True)
        .first()
    )
    return outcome or "none"


def _variables_for(match: CallerMatch) -> dict[str, str]:
    variables = dict(GENERIC_VARIABLES)
    if match.source not in ("queue", "ledger"):
        return variables
    variables["known_caller"] = "true"
    variables["last_outcome"] = _last_outcome(match.client_id)
    item = match.item
    if item is None:
        # A ledger match: the latest queue row we still hold for the client, if any.
        item = QueueItem.objects.filter(client_id=match.client_id).order_by("-campaign__date").first()
    if item is not None:
        variables.update(
            client_name=item.client_name,
            first_name=item.client_name.split()[0] if item.client_name.split() else "",
            amount_due=_money(item.amount_due),
            days_past_due=str(item.days_past_due),
            account_status="suspended" if item.phase in RESURRECTION_PHASES else "past due",
            phase=Phase(item.phase).label if item.phase in Phase.values else item.phase,
            transfer_number=item.transfer_number,
            payment_link=item.payment_link,
        )
    return variables


def inbound_call_answer(*, call_inbound: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The `call_inbound` answer for Retell, and the ledger entry that keeps the dialer away."""
    from_number = call_inbound.get("from_number")
    if not isinstance(from_number, str):
        raise MalformedInbound("call_inbound.from_number must be a string")
    call_id = str(call_inbound.get("call_id") or "")[:100]
    try:
        phone = phone_to_e164(from_number)
    except GeoError:
        phone = ""
    match = caller_match(phone=phone, now=now)
    # Without Retell's call id a generated reference still records the contact; its later
    # call events then simply find no ledger entry to update.
    reference = call_id or f"inbound-{uuid.uuid4().hex}"
    metadata: dict[str, Any] = {"match": match.source, "client_id": match.client_id, "ledger_reference": reference}
    if match.item is not None:
        metadata.update(queue_item_id=match.item.pk, campaign_id=match.item.campaign_id)

    with transaction.atomic():
        _inbound_event_store(call_inbound=call_inbound, reference=reference, now=now)
        if match.source in ("queue", "ledger"):
            ledger_record(
                client_id=match.client_id,
                phone=phone,
                kind=ContactLedgerEntry.Kind.INBOUND_CALL,
                reference=reference,
                occurred_at=now,
                campaign_date=timezone.localdate(now) if match.item is not None else None,
                state=match.item.state if match.item is not None else "",
            )
        elif match.source == "ambiguous":
            FollowUpTask.objects.get_or_create(
                kind=FollowUpTask.Kind.LOW_CONFIDENCE_MATCH,
                source_ref=reference,
                defaults={
                    "phone": phone,
                    "due_at": now + FOLLOW_UP_DUE[FollowUpTask.Kind.LOW_CONFIDENCE_MATCH],
                    "detail": (
                        "Inbound call from a number shared by clients "
                        f"{', '.join(match.candidates)}; the agent was given no account details."
                    ),
                },
            )
    log.info(
        "retell inbound call matched",
        extra={"call_id": call_id, "match": match.source, "client_id": match.client_id, "phone": phone},
    )
    return {"call_inbound": {"dynamic_variables": _variables_for(match), "metadata": metadata}}


def _inbound_event_store(*, call_inbound: Mapping[str, Any], reference: str, now: dt.datetime) -> None:
    try:
        with transaction.atomic():
            WebhookEvent.objects.create(
                vendor=WebhookEvent.Vendor.RETELL,
                dedupe_key=f"call_inbound:{reference}"[:200],
                event_type="call_inbound",
                reference=reference[:100],
                payload={"event": "call_inbound", "call_inbound": dict(call_inbound)},
                processed_at=now,
                result="answered",
            )
    except IntegrityError:
        # Retell retried the same inbound call: answer again, record nothing twice.
        log.info("retell inbound call repeated", extra={"call_id": reference})
