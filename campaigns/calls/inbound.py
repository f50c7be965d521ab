"""Inbound calls: who is calling, what Grace should know, and keeping the dialer off them today.

Retell asks, before the agent answers, for the caller's dynamic variables (seed 001: "caller
matched to account, context loaded"). The caller's number is matched to an account — on every
number the account was ever reached at — whether or not the client is in today's queue, and
before or after the day's flush; a client known only from the contact ledger (contacted before
accounts were kept) is still recognised, with fewer details. A number shared by several clients
is not disclosed to anyone: the agent gets the generic variables and a person gets a
low-confidence-match task, because talking about a debt to the wrong person is itself a
violation.

The call is stored like an outbound one (a `CallAttempt` of kind inbound, keyed by Retell's call
id): its later events bring the transcript, recording, summary and outcome, and it is written to
the warehouse history with its day. A matched client also gets an `inbound_call` ledger entry,
which the compliance gate reads: no outbound call to that client for the rest of the day, and
the conversation blackout starts from it.

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
from django.db.models import Q
from django.utils import timezone

from cadences.models import DialerSettings, Phase, Team, team_for_phase
from cadences.selectors import phase_on_day
from campaigns.calls.high_value import high_value_rule, high_value_variables
from campaigns.compliance.ledger import ledger_record
from campaigns.geo import GeoError, phone_to_e164
from campaigns.models import (
    FOLLOW_UP_DUE,
    Account,
    CallAttempt,
    Campaign,
    ContactLedgerEntry,
    FollowUpTask,
    Payment,
    PromiseToPay,
    QueueItem,
    Suppression,
    WebhookEvent,
)
from campaigns.payments import links as payment_links

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
    "open_promise": "",
    "recent_history": "",
    "inbound_flow": "generic",
    "verify_before_balance": "true",
    "transfer_brief": "",
    "payment_received": "false",
    "last_payment": "",
    "high_value": "false",
    "high_value_instruction": "",
}

# Inbound conversation paths (seed 001: "routed to the right flow — payment, query, dispute, or
# escalation"), each with its own Retell agent (Dialer settings in the admin).
FLOW_PAYMENT = "payment"
FLOW_QUESTION = "question"
FLOW_DISPUTE = "dispute"
FLOW_ESCALATION = "escalation"
FLOW_GENERIC = "generic"
FLOW_AGENT_FIELDS = {
    FLOW_PAYMENT: "inbound_agent_payment",
    FLOW_QUESTION: "inbound_agent_question",
    FLOW_DISPUTE: "inbound_agent_dispute",
    FLOW_ESCALATION: "inbound_agent_escalation",
    FLOW_GENERIC: "inbound_agent_generic",
}
ESCALATION_TASKS = (
    FollowUpTask.Kind.LEGAL_LANGUAGE,
    FollowUpTask.Kind.VULNERABLE_CUSTOMER,
    FollowUpTask.Kind.BROKEN_PROMISE,
    FollowUpTask.Kind.IDENTITY_LOCKED,
)

# How far back the ledger is searched for a caller (the ledger keeps about 400 days).
LEDGER_MATCH_DAYS = 400
# Interactions the one-paragraph summary of the caller's history looks back on.
RECENT_INTERACTIONS = 4


class MalformedInbound(ValueError):
    """The body is JSON but not a Retell inbound-call request."""


@dataclass(frozen=True)
class CallerMatch:
    source: str  # "account", "ledger", "ambiguous" or "none"
    client_id: str = ""
    account: Account | None = None
    candidates: tuple[str, ...] = ()


def caller_match(*, phone: str, now: dt.datetime) -> CallerMatch:
    """The one client this number belongs to: from the accounts, or else the contact ledger."""
    if not phone:
        return CallerMatch("none")
    accounts = list(
        Account.objects.select_related("segment").filter(Q(phone=phone) | Q(phones__phone=phone)).distinct().order_by("client_id")
    )
    if len(accounts) == 1:
        return CallerMatch("account", client_id=accounts[0].client_id, account=accounts[0])
    if len(accounts) > 1:
        return CallerMatch("ambiguous", candidates=tuple(a.client_id for a in accounts))
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


def recent_history(*, client_id: str, now: dt.datetime) -> str:
    """One paragraph on the client's last interactions, for an agent picking up the call."""
    calls = list(
        CallAttempt.objects.filter(client_id=client_id, placed_at__lte=now)
        .exclude(outcome="")
        .order_by("-placed_at")[:RECENT_INTERACTIONS]
    )
    texts = ContactLedgerEntry.objects.filter(client_id=client_id, kind=ContactLedgerEntry.Kind.SMS, occurred_at__lte=now).count()
    if not calls and not texts:
        return "No earlier calls or texts on record."
    parts = []
    for call in calls:
        when = timezone.localtime(call.placed_at).strftime("%b %d") if call.placed_at else "earlier"
        direction = "called in" if call.kind == CallAttempt.Kind.INBOUND else "was called"
        sentence = f"On {when} the client {direction} ({call.get_outcome_display().lower()})"
        if call.summary:
            sentence += f": {call.summary.strip().rstrip('.')}"
        parts.append(sentence + ".")
    if texts:
        parts.append(f"{texts} text{'s' if texts != 1 else ''} sent so far.")
    return " ".join(parts)


def inbound_flow(match: CallerMatch, *, now: dt.datetime) -> str:
    """The conversation path for a caller, from the account's state: an open dispute first, then
    what needs a person, then money owed or promised, else a question (paid, resolved)."""
    if match.source not in ("account", "ledger"):
        return FLOW_GENERIC
    client_id = match.client_id
    open_tasks = FollowUpTask.objects.filter(client_id=client_id).exclude(status=FollowUpTask.Status.DONE)
    suppressions = Suppression.objects.filter(client_id=client_id, lifted_at__isnull=True)
    if open_tasks.filter(kind=FollowUpTask.Kind.DISPUTE).exists() or suppressions.filter(reason=Suppression.Reason.DISPUTE_HOLD).exists():
        return FLOW_DISPUTE
    if open_tasks.filter(kind__in=ESCALATION_TASKS).exists() or suppressions.filter(reason=Suppression.Reason.ATTORNEY).exists():
        return FLOW_ESCALATION
    account = match.account
    if account is not None and account.status == Account.Status.RESOLVED:
        return FLOW_QUESTION
    if PromiseToPay.objects.filter(client_id=client_id, status=PromiseToPay.Status.PENDING).exists():
        return FLOW_PAYMENT
    if account is not None and account.amount_due is not None and account.amount_due <= 0:
        return FLOW_QUESTION
    return FLOW_PAYMENT


def _variables_for(match: CallerMatch, *, now: dt.datetime) -> dict[str, str]:
    variables = dict(GENERIC_VARIABLES)
    if match.source not in ("account", "ledger"):
        return variables
    variables["known_caller"] = "true"
    variables["last_outcome"] = _last_outcome(match.client_id)
    variables["recent_history"] = recent_history(client_id=match.client_id, now=now)
    promise = (
        PromiseToPay.objects.filter(client_id=match.client_id, status=PromiseToPay.Status.PENDING).order_by("promised_date").first()
    )
    account = match.account
    verify_first = account is None or account.segment is None or account.segment.verify_before_balance
    if promise is not None:
        # Amounts wait for verification, like the balance.
        amount = f"${_money(promise.amount)} " if promise.amount is not None and not verify_first else "a payment "
        variables["open_promise"] = f"{amount}promised for {promise.promised_date:%B %d, %Y}"
    if account is None:
        return variables
    variables.update(
        client_name=account.name,
        first_name=account.first_name,
        # Where the segment requires it, the balance is looked up only after the caller is verified.
        amount_due="" if verify_first else _money(account.amount_due),
        verify_before_balance="true" if verify_first else "false",
        # A brief is made on the call that transfers, for that call: an earlier call's brief (which
        # may say "verified" and name the balance) is never handed to a new caller.
        transfer_brief="",
        days_past_due="" if account.days_past_due is None else str(account.days_past_due),
        payment_link=payment_links.secure_link(account),
    )
    payment = Payment.objects.filter(client_id=account.client_id).order_by("-paid_at").first()
    if payment is not None:
        # "Your payment arrived": Grace thanks the caller instead of asking for it again. The
        # amount, like the balance, waits for verification where the segment asks for it.
        if not verify_first:
            variables["last_payment"] = f"${_money(payment.amount)} received {timezone.localtime(payment.paid_at):%B %d, %Y}"
        if timezone.localdate(payment.paid_at) >= timezone.localdate(now) - dt.timedelta(days=7):
            variables["payment_received"] = "true"
    phase, transfer_number = "", ""
    today = timezone.localdate(now)
    item = QueueItem.objects.filter(campaign__date=today, client_id=account.client_id).only("transfer_number", "phase").first()
    if item is not None:  # today's touchpoint already resolved the routing
        phase, transfer_number = item.phase, item.transfer_number
    elif account.segment is not None and account.days_past_due is not None:
        segment = account.segment
        phase = phase_on_day(segment=segment, day=account.days_past_due)
        # The number of the phase the client is in: billing before suspension, resurrection from it on.
        resurrection = team_for_phase(phase) == Team.RESURRECTION
        transfer_number = segment.resurrection_transfer_number if resurrection else segment.billing_transfer_number
    variables["phase"] = Phase(phase).label if phase in Phase.values else phase
    variables["transfer_number"] = transfer_number
    variables["account_status"] = _status_words(account, phase)
    return high_value_variables(
        rule=high_value_rule(segment=account.segment, amount_due=account.amount_due, transfer_number=transfer_number), variables=variables
    )


def _status_words(account: Account, phase: str) -> str:
    if account.status == Account.Status.RESOLVED:
        return "resolved"
    if phase == Phase.CANCELLATION or account.status == Account.Status.CANCELLED:
        return "cancelled"
    if team_for_phase(phase) == Team.RESURRECTION or account.status == Account.Status.SUSPENDED:
        return "suspended"
    return "past due"


def inbound_call_answer(*, call_inbound: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The `call_inbound` answer for Retell; the call recorded, and the ledger entry that keeps
    the dialer away."""
    from_number = call_inbound.get("from_number")
    if not isinstance(from_number, str):
        raise MalformedInbound("call_inbound.from_number must be a string")
    call_id = str(call_inbound.get("call_id") or "")[:100]
    try:
        phone = phone_to_e164(from_number)
    except GeoError:
        phone = ""
    match = caller_match(phone=phone, now=now)
    # Without Retell's call id a generated reference still records the contact; the call's own
    # events then create its record by their call id.
    reference = call_id or f"inbound-{uuid.uuid4().hex}"
    metadata: dict[str, Any] = {"match": match.source, "client_id": match.client_id, "ledger_reference": reference}

    with transaction.atomic():
        _inbound_event_store(call_inbound=call_inbound, reference=reference, now=now)
        if call_id:
            _inbound_attempt_create(
                call_id=call_id,
                client_id=match.client_id if match.source in ("account", "ledger") else "",
                caller=phone or from_number[:20],
                to_number=str(call_inbound.get("to_number") or "")[:20],
                now=now,
            )
        if match.source in ("account", "ledger"):
            _inbound_ledger_record(match=match, phone=phone, reference=reference, now=now)
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
    flow = inbound_flow(match, now=now)
    variables = _variables_for(match, now=now)
    variables["inbound_flow"] = flow
    metadata["inbound_flow"] = flow
    if variables.get("high_value") == "true":
        # The rule is recorded on the call, as for outbound calls.
        metadata["high_value"] = True
        if call_id:
            CallAttempt.objects.filter(call_id=call_id).update(high_value=True, senior_transfer_number=variables["transfer_number"])
    if match.source == "account":
        metadata["client_id"] = match.client_id
    answer: dict[str, Any] = {"dynamic_variables": variables, "metadata": metadata}
    agent_id = getattr(DialerSettings.load(), FLOW_AGENT_FIELDS[flow])
    if agent_id:
        answer["override_agent_id"] = agent_id
    return {"call_inbound": answer}


def _inbound_attempt_create(*, call_id: str, client_id: str, caller: str, to_number: str, now: dt.datetime) -> CallAttempt:
    campaign = Campaign.objects.filter(date=timezone.localdate(now)).first()
    attempt, _ = CallAttempt.objects.get_or_create(
        call_id=call_id,
        defaults={
            "kind": CallAttempt.Kind.INBOUND,
            "client_id": client_id,
            "campaign": campaign,
            "from_number": caller,
            "to_number": to_number,
            "placed_at": now,
            "status": CallAttempt.Status.REGISTERED,
        },
    )
    return attempt


def inbound_call_ensure(*, call: Mapping[str, Any], now: dt.datetime) -> CallAttempt | None:
    """The record of an inbound call an event is about, created from the event when the inbound
    webhook gave no call id (its caller matched the same way)."""
    call_id = str(call.get("call_id") or "")[:100]
    if not call_id:
        return None
    existing = CallAttempt.objects.filter(call_id=call_id).first()
    if existing is not None:
        return existing
    raw_from = str(call.get("from_number") or "")
    try:
        phone = phone_to_e164(raw_from)
    except GeoError:
        phone = ""
    match = caller_match(phone=phone, now=now)
    client_id = match.client_id if match.source in ("account", "ledger") else ""
    with transaction.atomic():
        attempt = _inbound_attempt_create(
            call_id=call_id, client_id=client_id, caller=phone or raw_from[:20], to_number=str(call.get("to_number") or "")[:20], now=now
        )
        if client_id:
            _inbound_ledger_record(match=match, phone=phone, reference=call_id, now=now)
    return attempt


def _inbound_ledger_record(*, match: CallerMatch, phone: str, reference: str, now: dt.datetime) -> None:
    """The contact that keeps the outbound dialer away from the caller for the rest of the day."""
    ledger_record(
        client_id=match.client_id,
        phone=phone,
        kind=ContactLedgerEntry.Kind.INBOUND_CALL,
        reference=reference,
        occurred_at=now,
        campaign_date=timezone.localdate(now),
        state=match.account.state if match.account is not None else "",
    )


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
