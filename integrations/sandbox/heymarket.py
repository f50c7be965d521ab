"""The HeyMarket simulator: records sends, keeps contacts' opt-out status, and injects replies.

Endpoints under /sandbox/heymarket (Bearer the sandbox token):
  POST /v1/message/send        {inbox_id, creator_id, phone_number (digits, no '+'), text, local_id}
                               → {"id", "date"}; the same local_id returns the same message.
                               400 for a missing field, a '+' or non-digits in the number, or a
                               contact that opted out or is blocked.
  POST /v1/contact/status      {"phone"} → {"id", "phone", "unsubscribed", "blocked"}; 404 if unknown
  POST /v1/contact/set_status  {"phone", "status": active|blocked|unblocked|subscribed|unsubscribed}
                               → "success"
  POST /inject                 {"phone" (E.164 or digits), "text", "inbox_id"?} — a client's reply.
  GET  /messages?phone=        the recorded messages, newest first.

An injected reply is delivered to SANDBOX_APP_URL + "/webhooks/heymarket/" as HeyMarket does:
`{"type": "message_recieved", "id": <webhook id>, "token": <the simulator's own token>,
"event_data": {"id", "text", "date", "target", "phone", "inbox", "type": "sms",
"conversation": {"id", "inbox", "target"}}}`. An opt-out word (STOP, STOPALL, UNSUBSCRIBE,
CANCEL, END, QUIT, REVOKE, OPT OUT — the whole message, any case) also marks the contact
unsubscribed and sends `target_opt_out`; START, UNSTOP or YES sends `target_opt_in`. Opt events
carry `event_data {"id", "target", "phone", "inbox", "date", "status"}`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.db import IntegrityError, transaction

from integrations.heymarket import client as heymarket_client
from integrations.sandbox.models import SimulatedContact, SimulatedDelivery, SimulatedMessage
from integrations import modes
from integrations.sandbox import stripe as stripe_simulator

VENDOR = "heymarket"
WEBHOOK_CONFIG_ID = 4242  # HeyMarket's top-level "id" is the webhook configuration's id
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPT OUT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
CONTACT_STATUSES = ("active", "blocked", "unblocked", "subscribed", "unsubscribed")
_DIGITS = re.compile(r"[1-9][0-9]{6,14}", re.ASCII)


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _digits(value: Any, *, field: str) -> str:
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        raise Refused(400, f"{field} must be E.164 digits without '+' (e.g. 15105553344)")
    return value


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def message_send(*, body: Any, now: dt.datetime) -> tuple[SimulatedMessage, bool]:
    """Record one outbound SMS. Returns (message, replayed)."""
    if not isinstance(body, dict):
        raise Refused(400, "request body must be a JSON object")
    for field in ("inbox_id", "creator_id"):
        if body.get(field) in (None, ""):
            raise Refused(400, f"{field} is required")
    phone = _digits(body.get("phone_number"), field="phone_number")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise Refused(400, "text is required")
    local_id = body.get("local_id")
    if local_id is not None and (not isinstance(local_id, str) or not local_id):
        raise Refused(400, "local_id must be a non-empty string")
    if local_id:
        existing = SimulatedMessage.objects.filter(local_id=local_id).first()
        if existing is not None:
            return existing, True
    contact = SimulatedContact.objects.filter(phone=phone).first()
    if contact is not None and (contact.unsubscribed or contact.blocked):
        raise Refused(400, "the contact has opted out of messages" if contact.unsubscribed else "the contact is blocked")
    try:
        with transaction.atomic():
            message = SimulatedMessage.objects.create(
                direction=SimulatedMessage.Direction.OUTBOUND,
                local_id=local_id or None,
                inbox_id=str(body["inbox_id"]),
                creator_id=str(body["creator_id"]),
                phone=phone,
                text=text,
                created_at=now,
            )
    except IntegrityError:
        # Two sends with the same local_id raced; the first one recorded is the answer to both.
        return SimulatedMessage.objects.get(local_id=local_id), True
    SimulatedContact.objects.get_or_create(phone=phone)
    if modes.is_simulated("stripe"):
        # The sandbox client may open the payment link this text carries.
        stripe_simulator.link_opens_schedule(text=text, message_id=message.pk, now=now)
    return message, False


def contact_status(*, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Refused(400, "request body must be a JSON object")
    phone = _digits(body.get("phone"), field="phone")
    contact = SimulatedContact.objects.filter(phone=phone).first()
    if contact is None:
        raise Refused(404, "contact not found")
    return contact.as_api()


def contact_set_status(*, body: Any) -> str:
    if not isinstance(body, dict):
        raise Refused(400, "request body must be a JSON object")
    phone = _digits(body.get("phone"), field="phone")
    status = body.get("status")
    if status not in CONTACT_STATUSES:
        raise Refused(400, f"status must be one of {', '.join(CONTACT_STATUSES)}")
    contact, _created = SimulatedContact.objects.get_or_create(phone=phone)
    if status == "unsubscribed":
        contact.unsubscribed = True
    elif status in ("subscribed", "active"):
        contact.unsubscribed = False
        contact.blocked = False if status == "active" else contact.blocked
    elif status == "blocked":
        contact.blocked = True
    elif status == "unblocked":
        contact.blocked = False
    contact.save()
    return "success"


def _event(event_type: str, event_data: dict[str, Any]) -> dict[str, Any]:
    # The simulator's own token: HEYMARKET_WEBHOOK_TOKEN may hold the live configuration's secret.
    return {"type": event_type, "id": WEBHOOK_CONFIG_ID, "token": heymarket_client.SANDBOX_WEBHOOK_TOKEN, "event_data": event_data}


def inject_inbound(*, phone: str, text: str, inbox_id: str = "", now: dt.datetime) -> SimulatedMessage:
    """A client's reply arrives: recorded, and its webhooks queued for delivery to the app."""
    digits = _digits(phone[1:] if isinstance(phone, str) and phone.startswith("+") else phone, field="phone")
    if not isinstance(text, str) or not text.strip():
        raise Refused(400, "text is required")
    if not inbox_id:
        last = SimulatedMessage.objects.filter(phone=digits, direction=SimulatedMessage.Direction.OUTBOUND).exclude(inbox_id="").first()
        inbox_id = last.inbox_id if last else ""
    with transaction.atomic():
        message = SimulatedMessage.objects.create(
            direction=SimulatedMessage.Direction.INBOUND, inbox_id=str(inbox_id), phone=digits, text=text, created_at=now
        )
        inbox: int | str = int(inbox_id) if str(inbox_id).isdigit() else str(inbox_id)
        chat_id = 700_000 + (int(digits[-6:]) if digits[-6:].isdigit() else 0)
        received = {
            "id": message.pk,
            "text": text,
            "date": _iso(now),
            "target": digits,
            "phone": digits,
            "inbox": inbox,
            "type": "sms",
            "conversation": {"id": chat_id, "inbox": inbox, "target": digits},
        }
        rows = [
            SimulatedDelivery(vendor=VENDOR, event="message_recieved", reference=str(message.pk), payload=_event("message_recieved", received), due_at=now)
        ]
        word = " ".join(text.split()).upper()
        opt_event = "target_opt_out" if word in OPT_OUT_WORDS else "target_opt_in" if word in OPT_IN_WORDS else ""
        if opt_event:
            contact, _created = SimulatedContact.objects.get_or_create(phone=digits)
            contact.unsubscribed = opt_event == "target_opt_out"
            contact.save()
            opt_data = {
                "id": message.pk,
                "target": digits,
                "phone": digits,
                "inbox": inbox,
                "date": _iso(now),
                "status": "unsubscribed" if opt_event == "target_opt_out" else "subscribed",
            }
            rows.append(
                SimulatedDelivery(
                    vendor=VENDOR, event=opt_event, reference=str(message.pk), payload=_event(opt_event, opt_data),
                    due_at=now + dt.timedelta(milliseconds=100),
                )
            )
        SimulatedDelivery.objects.bulk_create(rows)
    return message
