"""What clients text back through HeyMarket.

Inbound (`heymarket_event_process`): opt-out words add an SMS suppression and get one
confirmation; opt-in words lift it; HELP gets a help answer; anything else becomes a FollowUpTask
for the billing or resurrection team; opt-out/opt-in events from HeyMarket itself update
suppressions; delivery events update the message. Replies are sent outside the local window
(they answer the client's own message, which carriers and the CTIA require) but never to anyone
else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import phonenumbers
from django.db import transaction
from django.db.models import Q
from django_q.tasks import async_task

from cadences.models import DialerSettings, Segment, Team
from campaigns.compliance import ledger
from campaigns.models import ContactLedgerEntry, FollowUpTask, QueueItem, SmsMessage, Suppression
from campaigns.sms.outbound import OPT_OUT_NOTICE, Kind, MessageStatus

log = logging.getLogger(__name__)

# How soon a person should look at a client's reply.
REPLY_TASK_DUE = dt.timedelta(hours=2)

# Whole-message keywords (CTIA; HeyMarket's own list plus REVOKE and OPT OUT).
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPT OUT", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
_KEYWORD_NOISE = re.compile(r"[\s\-_]+")


def normalize_keyword(text: str) -> str:
    """'  opt-out ', 'Stop.' and 'STOP' compare equal; anything else keeps its words."""
    return _KEYWORD_NOISE.sub(" ", (text or "").strip().strip(".!?\"'").strip()).upper()


def phone_e164(raw: object) -> str:
    """HeyMarket writes numbers as digits without '+'; we store E.164. '' when unusable."""
    text = str(raw or "").strip()
    digits = re.sub(r"\D", "", text)
    if not digits:
        return ""
    if not text.startswith("+") and len(digits) == 10:
        digits = "1" + digits
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class ClientMatch:
    client_id: str
    client_name: str
    team: str
    inbox_id: str
    transfer_number: str
    queue_item: QueueItem | None


def _team_for_inbox(inbox_id: str) -> str:
    if inbox_id and Segment.objects.filter(resurrection_inbox_id=inbox_id).exists():
        return Team.RESURRECTION
    return Team.BILLING


def client_match(*, phone: str, inbox_id: str = "") -> ClientMatch:
    """Who texted: the latest queue item for the number, else the ledger, else nobody known.

    The team (and so the inbox and transfer number) follows the client's phase when the queue
    still has them; otherwise the inbox the reply arrived in says which team's it is.
    """
    item = (
        QueueItem.objects.filter(phone=phone).select_related("campaign").order_by("-campaign__date", "-pk").first()
        if phone
        else None
    )
    if item is not None:
        return ClientMatch(
            client_id=item.client_id,
            client_name=item.client_name,
            team=item.team,
            inbox_id=inbox_id or item.inbox_id,
            transfer_number=item.transfer_number,
            queue_item=item,
        )
    entry = ContactLedgerEntry.objects.filter(phone=phone).order_by("-occurred_at").first() if phone else None
    team = _team_for_inbox(inbox_id)
    if not inbox_id and phone:
        last = SmsMessage.objects.filter(phone=phone).order_by("-created_at").first()
        inbox_id = last.inbox_id if last else ""
        team = _team_for_inbox(inbox_id)
    segment = Segment.objects.filter(Q(billing_inbox_id=inbox_id) | Q(resurrection_inbox_id=inbox_id)).first() if inbox_id else None
    transfer = ""
    if segment is not None:
        transfer = segment.resurrection_transfer_number if team == Team.RESURRECTION else segment.billing_transfer_number
    return ClientMatch(
        client_id=entry.client_id if entry else "",
        client_name="",
        team=team,
        inbox_id=inbox_id,
        transfer_number=transfer,
        queue_item=None,
    )


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def help_text(*, company_name: str, transfer_number: str) -> str:
    call = f" call us at {_format_phone(transfer_number)} or" if transfer_number else ""
    return f"{company_name}: For help with your account,{call} reply to this text and our team will get back to you. {OPT_OUT_NOTICE}"


def opt_out_confirmation_text(*, company_name: str) -> str:
    return f"{company_name}: You are unsubscribed and will get no more texts from us. Reply START to resubscribe."


def opt_in_confirmation_text(*, company_name: str) -> str:
    return f"{company_name}: You are subscribed to account texts again. Reply HELP for help. {OPT_OUT_NOTICE}"


def _format_phone(e164: str) -> str:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def _queue_reply(*, kind: str, inbound_id: str, phone: str, match: ClientMatch, text: str, now: dt.datetime) -> SmsMessage | None:
    """Create the reply (idempotent on local_id) and send it right after the commit."""
    if not match.inbox_id:
        log.warning("sms reply not sent: no inbox known", extra={"kind": kind, "client_id": match.client_id})
        return None
    prefix = {Kind.OPT_OUT_CONFIRMATION: "stop", Kind.OPT_IN_CONFIRMATION: "start", Kind.HELP_REPLY: "help"}[Kind(kind)]
    message, created = SmsMessage.objects.get_or_create(
        local_id=f"hm-{prefix}-{inbound_id}"[:100],
        defaults={
            "kind": kind,
            "client_id": match.client_id,
            "phone": phone,
            "inbox_id": match.inbox_id,
            "text": text,
            # Not a campaign touchpoint: it answers the client's own message, so it is neither
            # counted nor held to the outreach window, and it outlives the day's queue cleanup.
            "scheduled_for": now,
        },
    )
    if created:
        transaction.on_commit(lambda: async_task("campaigns.tasks.sms_reply_send_task", message.pk))
    return message


def _event_phone(event_data: dict[str, Any]) -> str:
    for key in ("phone", "phone_number", "target"):
        value = event_data.get(key)
        if isinstance(value, (str, int)) and _digits(str(value)):
            return phone_e164(value)
    conversation = event_data.get("conversation")
    if isinstance(conversation, dict):
        return phone_e164(conversation.get("target"))
    return ""


def _event_inbox(event_data: dict[str, Any]) -> str:
    for container in (event_data, event_data.get("conversation")):
        if isinstance(container, dict):
            for key in ("inbox_id", "inbox"):
                value = container.get(key)
                if value not in (None, ""):
                    return str(value)
    return ""


def heymarket_event_key(payload: dict[str, Any]) -> str:
    """The dedupe key: type + event_data.id, or a digest of event_data when it has no id."""
    event_type = str(payload.get("type") or "")
    event_data = payload.get("event_data")
    event_id = event_data.get("id") if isinstance(event_data, dict) else None
    if event_id in (None, ""):
        digest = hashlib.sha256(json.dumps(event_data, sort_keys=True, default=str).encode()).hexdigest()[:32]
        return f"{event_type}:sha256:{digest}"
    return f"{event_type}:{event_id}"[:200]


def _inbound_message(*, event_data: dict[str, Any], now: dt.datetime) -> str:
    phone = _event_phone(event_data)
    inbound_id = str(event_data.get("id") or "")
    if not phone or not inbound_id:
        log.warning("heymarket message without phone or id", extra={"has_phone": bool(phone), "inbound_id": inbound_id})
        return "ignored_incomplete"
    text = str(event_data.get("text") or "")
    keyword = normalize_keyword(text)
    match = client_match(phone=phone, inbox_id=_event_inbox(event_data))
    company = DialerSettings.load().company_name
    source = f"heymarket:{inbound_id}"

    reply: tuple[str, str] | None = None
    outcome = ""
    if keyword in OPT_OUT_WORDS:
        ledger.suppression_add(
            reason=Suppression.Reason.SMS_OPT_OUT,
            channel=Suppression.Channel.SMS,
            source=source,
            phone=phone,
            note=f"Texted {keyword!r}",
        )
        # One confirmation per opt-out: none if one went out since the number's opt-out began
        # (a second STOP), but one even when HeyMarket's own target_opt_out arrived first.
        since = (
            Suppression.objects.filter(phone=phone, reason=Suppression.Reason.SMS_OPT_OUT, lifted_at__isnull=True)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        confirmed = SmsMessage.objects.filter(phone=phone, kind=Kind.OPT_OUT_CONFIRMATION, created_at__gte=since).exists()
        reply = None if confirmed else (Kind.OPT_OUT_CONFIRMATION, opt_out_confirmation_text(company_name=company))
        outcome = "opted_out"
    elif keyword in OPT_IN_WORDS and ledger.suppression_lift(
        reason=Suppression.Reason.SMS_OPT_OUT, lifted_by=source, phone=phone
    ):
        reply = (Kind.OPT_IN_CONFIRMATION, opt_in_confirmation_text(company_name=company))
        outcome = "opted_in"
    elif keyword in HELP_WORDS:
        reply = (Kind.HELP_REPLY, help_text(company_name=company, transfer_number=match.transfer_number))
        outcome = "help"
    if outcome:
        if reply is not None:
            _queue_reply(kind=reply[0], inbound_id=inbound_id, phone=phone, match=match, text=reply[1], now=now)
        log.info("sms keyword", extra={"client_id": match.client_id, "keyword": keyword, "outcome": outcome, "replied": reply is not None})
        return outcome

    # Anything else — including "YES" from a number that never opted out, which answers a
    # person rather than the keyword list — is for a person to read.
    FollowUpTask.objects.get_or_create(
        kind=FollowUpTask.Kind.SMS_REPLY,
        source_ref=source[:100],
        defaults={
            "team": match.team,
            "client_id": match.client_id,
            "client_name": match.client_name,
            "phone": phone,
            "due_at": now + REPLY_TASK_DUE,
            "detail": text or "(message without text)",
        },
    )
    log.info("sms reply task", extra={"client_id": match.client_id, "team": match.team})
    return "reply_task"


def _opt_status_event(*, event_type: str, event_data: dict[str, Any], event_key: str) -> str:
    phone = _event_phone(event_data)
    if not phone:
        log.warning("heymarket opt status event without phone", extra={"type": event_type})
        return "ignored_incomplete"
    source = f"heymarket:{event_key}"[:100]
    if event_type == "target_opt_out":
        ledger.suppression_add(
            reason=Suppression.Reason.SMS_OPT_OUT,
            channel=Suppression.Channel.SMS,
            source=source,
            phone=phone,
            note="Opted out in HeyMarket",
        )
        return "opted_out"
    ledger.suppression_lift(reason=Suppression.Reason.SMS_OPT_OUT, lifted_by=source, phone=phone)
    return "opted_in"


# HeyMarket's message status words, mapped onto ours; anything else is logged and kept as is.
_DELIVERY_STATUS = {
    "sent": MessageStatus.SENT,
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "received": MessageStatus.DELIVERED,
    "failed": MessageStatus.FAILED,
    "undelivered": MessageStatus.FAILED,
    "error": MessageStatus.FAILED,
    "rejected": MessageStatus.FAILED,
}


def _delivery_event(*, event_data: dict[str, Any]) -> str:
    local_id = str(event_data.get("local_id") or "")
    heymarket_id = str(event_data.get("id") or "")
    query = Q(local_id=local_id) if local_id else Q()
    if heymarket_id:
        query |= Q(heymarket_id=heymarket_id)
    message = SmsMessage.objects.filter(query).first() if query else None
    if message is None:
        return "unknown_message"  # a text an agent sent from the HeyMarket app, not ours
    raw_status = str(event_data.get("status") or "").lower()
    status = _DELIVERY_STATUS.get(raw_status)
    if status is None:
        log.info("heymarket unknown message status", extra={"local_id": message.local_id, "status": raw_status})
        return "unknown_status"
    # Forward only: pending → sent → delivered; failed can follow sent or pending, never delivered.
    allowed_from = {
        MessageStatus.SENT: [MessageStatus.PENDING],
        MessageStatus.DELIVERED: [MessageStatus.PENDING, MessageStatus.SENT],
        MessageStatus.FAILED: [MessageStatus.PENDING, MessageStatus.SENT],
    }[status]
    fields: dict[str, Any] = {"status": status}
    if heymarket_id and not message.heymarket_id:
        fields["heymarket_id"] = heymarket_id[:64]
    if status == MessageStatus.FAILED:
        fields["error"] = str(event_data.get("error") or event_data.get("status_message") or "HeyMarket reported the text undelivered")
    SmsMessage.objects.filter(pk=message.pk, status__in=allowed_from).update(**fields)
    return f"status_{status}"


def heymarket_event_process(*, payload: dict[str, Any], now: dt.datetime) -> str:
    """Act on one authenticated, first-seen HeyMarket event; returns what it did (for the log)."""
    event_type = str(payload.get("type") or "")
    event_data = payload.get("event_data")
    if not isinstance(event_data, dict):
        log.warning("heymarket event without event_data", extra={"type": event_type})
        return "ignored_incomplete"
    if event_type == "message_recieved":  # sic: HeyMarket's spelling
        return _inbound_message(event_data=event_data, now=now)
    if event_type in ("target_opt_out", "target_opt_in"):
        return _opt_status_event(event_type=event_type, event_data=event_data, event_key=heymarket_event_key(payload))
    if event_type in ("message_sent", "message_status", "message_updated", "message_delivered", "message_failed"):
        return _delivery_event(event_data=event_data)
    log.info("heymarket event type not handled", extra={"type": event_type})
    return "unhandled_type"
