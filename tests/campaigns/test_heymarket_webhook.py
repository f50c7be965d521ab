"""POST /webhooks/heymarket/: opt-outs, opt-ins, HELP, replies for a person, delivery updates."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest
from django.test import Client
from django_q.conf import Conf

from campaigns.models import FollowUpTask, QueueItem, SmsMessage, Suppression, WebhookEvent
from campaigns.sms import outbound as sms
from campaigns.webhooks import inbox
from integrations import http
from integrations.sandbox.models import SimulatedMessage
from campaigns.sms import inbound as sms_inbound
from tests.campaigns.sms_factories import CAMPAIGN_DATE, queue_item, running_campaign, shipped_cadences  # noqa: F401 (fixture)

# Most tests stay inside a rolled-back transaction (replies are queued but, never committed, not
# sent); the ones marked `sends` commit and send the replies to the sandbox HeyMarket over HTTP.
pytestmark = pytest.mark.django_db
sends = pytest.mark.django_db(transaction=True)

URL = "/webhooks/heymarket/"
_ids = itertools.count(9_980_001)


@pytest.fixture
def webhook_token(settings, monkeypatch):
    settings.HEYMARKET_API_TOKEN = ""
    settings.HEYMARKET_WEBHOOK_TOKEN = "shared-webhook-token"
    # The stored event's processing task runs at once, as a worker runs it right after the commit.
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def heymarket_sandbox(webhook_token, settings, live_server, shipped_cadences, monkeypatch):
    settings.SANDBOX_APP_URL = live_server.url
    # Replies are sent by a task right after the webhook's commit; run it in-process here.
    monkeypatch.setattr(Conf, "SYNC", True)
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.01)
    http.reset_sessions()
    yield live_server
    http.reset_sessions()


def received(phone: str, text: str, *, inbox: Any = 41010, message_id: int | None = None, token: str = "shared-webhook-token") -> dict[str, Any]:
    """A `message_recieved` delivery shaped as HeyMarket sends it (digits without '+')."""
    digits = phone.lstrip("+")
    return {
        "type": "message_recieved",
        "id": 4242,
        "token": token,
        "event_data": {
            "id": message_id or next(_ids),
            "text": text,
            "date": "2025-06-10T15:04:05Z",
            "target": digits,
            "phone": digits,
            "inbox": inbox,
            "type": "sms",
            "conversation": {"id": 700123, "inbox": inbox, "target": digits},
        },
    }


def processed(response) -> str:
    """What processing did with the event a webhook answer accepted."""
    assert response.status_code == 200, response.content
    return WebhookEvent.objects.get(pk=response.json()["event_id"]).result


def post(payload: Any, *, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    return Client().post(URL, data=body, content_type="application/json")


def confirmations(phone: str) -> list[SimulatedMessage]:
    return list(SimulatedMessage.objects.filter(direction=SimulatedMessage.Direction.OUTBOUND, phone=phone.lstrip("+")))


def active_opt_out(phone: str) -> bool:
    return Suppression.objects.filter(
        phone=phone, reason=Suppression.Reason.SMS_OPT_OUT, channel=Suppression.Channel.SMS, lifted_at__isnull=True
    ).exists()


# --- Authentication and shape ------------------------------------------------------------------


@pytest.mark.parametrize("token", ["wrong-token", "", "shared-webhook-token ", "SHARED-WEBHOOK-TOKEN", None, 12345])
def test_a_forged_or_missing_token_is_refused_and_nothing_is_stored(webhook_token, token):
    payload = received("+12125550101", "STOP")
    payload["token"] = token
    response = post(payload)
    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()
    assert not Suppression.objects.exists()


def test_a_body_without_a_token_is_refused(webhook_token):
    payload = received("+12125550101", "STOP")
    del payload["token"]
    assert post(payload).status_code == 401


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"[1, 2]", b'"STOP"'])
def test_a_body_that_is_not_a_json_object_is_a_400(webhook_token, raw):
    assert post(None, raw=raw).status_code == 400
    assert not WebhookEvent.objects.exists()


def test_only_post_is_accepted(webhook_token):
    assert Client().get(URL).status_code == 405


# --- Opt-out, opt-in, HELP ----------------------------------------------------------------------

OPT_OUT_MESSAGES = [
    "STOP", " stop ", "Stop", "sToPaLl", "  UNSUBSCRIBE", "cancel\n", "End", "qUiT ", "ReVoKe", "opt out", "  Opt   OUT  ", "\tSTOPALL\t",
]


def queued_replies(phone: str, kind: str = SmsMessage.Kind.OPT_OUT_CONFIRMATION) -> list[SmsMessage]:
    return list(SmsMessage.objects.filter(phone=phone, kind=kind))


@pytest.mark.parametrize("text", OPT_OUT_MESSAGES)
def test_every_opt_out_word_suppresses_the_number_and_queues_one_confirmation(webhook_token, text):
    campaign = running_campaign()
    item = queue_item(campaign)
    payload = received(item.phone, text)

    response = post(payload)

    assert processed(response) == "opted_out"
    assert active_opt_out(item.phone)
    [confirmation] = queued_replies(item.phone)
    assert "unsubscribed" in confirmation.text and "START" in confirmation.text
    assert confirmation.inbox_id == "41010"  # answered from the inbox the STOP arrived in
    assert confirmation.client_id == item.client_id

    # HeyMarket redelivers the same event, and the client sends STOP again: still one confirmation.
    assert post(payload).status_code == 200
    assert post(received(item.phone, "STOP")).status_code == 200
    assert len(queued_replies(item.phone)) == 1
    assert Suppression.objects.filter(phone=item.phone, lifted_at__isnull=True).count() == 1


@sends
def test_the_opt_out_confirmation_is_texted_once(heymarket_sandbox):
    campaign = running_campaign()
    item = queue_item(campaign)
    payload = received(item.phone, "  Opt   OUT  ")
    post(payload)
    post(payload)
    post(received(item.phone, "stop"))
    [confirmation] = confirmations(item.phone)
    message = SmsMessage.objects.get(kind=SmsMessage.Kind.OPT_OUT_CONFIRMATION, phone=item.phone)
    assert confirmation.text == message.text and confirmation.local_id == message.local_id
    assert message.status == SmsMessage.Status.SENT and confirmation.inbox_id == "41010"


@sends
def test_the_opted_out_number_is_never_texted_again(heymarket_sandbox):
    campaign = running_campaign()
    item = queue_item(campaign)
    morning = dt.datetime.combine(CAMPAIGN_DATE, dt.time(15, 0), tzinfo=dt.timezone.utc)
    QueueItem.objects.filter(pk=item.pk).update(sms_due_at=morning)
    post(received(item.phone, " Stop "))
    sms.sms_send_due(now=morning)
    item.refresh_from_db()
    assert item.status == QueueItem.Status.SKIPPED and item.skip_reason == "suppressed"
    assert [m.text for m in confirmations(item.phone)] == [SmsMessage.objects.get(phone=item.phone).text]


@pytest.mark.parametrize("text", ["stop texting me", "STOP!!! I paid", "please stop", "STOP STOP"])
def test_a_sentence_containing_stop_is_for_a_person(webhook_token, text):
    campaign = running_campaign()
    item = queue_item(campaign)
    assert processed(post(received(item.phone, text))) == "reply_task"
    assert not active_opt_out(item.phone)
    assert FollowUpTask.objects.get(phone=item.phone).detail == text


@pytest.mark.parametrize("word", ["START", " unstop ", "Yes"])
def test_opting_back_in_lifts_the_suppression_and_confirms(webhook_token, word):
    campaign = running_campaign()
    item = queue_item(campaign)
    post(received(item.phone, "STOP"))
    response = post(received(item.phone, word))
    assert processed(response) == "opted_in"
    assert not active_opt_out(item.phone)
    lifted = Suppression.objects.get(phone=item.phone)
    assert lifted.lifted_at is not None and lifted.lifted_by.startswith("heymarket:")
    [welcome_back] = queued_replies(item.phone, SmsMessage.Kind.OPT_IN_CONFIRMATION)
    assert "subscribed to account texts again" in welcome_back.text
    # Opting out again later gets a confirmation of its own.
    post(received(item.phone, "STOP"))
    assert len(queued_replies(item.phone)) == 2


@sends
def test_the_opt_in_confirmation_is_texted(heymarket_sandbox):
    campaign = running_campaign()
    item = queue_item(campaign)
    post(received(item.phone, "STOP"))
    post(received(item.phone, "unstop"))
    texts = [m.text for m in sorted(confirmations(item.phone), key=lambda m: m.pk)]
    assert len(texts) == 2 and "subscribed to account texts again" in texts[1]


def test_yes_from_someone_who_never_opted_out_is_an_answer_for_a_person(webhook_token):
    campaign = running_campaign()
    item = queue_item(campaign)
    assert processed(post(received(item.phone, "YES"))) == "reply_task"
    assert FollowUpTask.objects.filter(phone=item.phone, detail="YES").exists()
    assert not SmsMessage.objects.filter(phone=item.phone).exists()


@pytest.mark.parametrize(
    "text, segment, day, line",
    [
        ("HELP", "RED Initial", 20, "(212) 555-0110"),  # billing phase: the billing line
        (" help ", "RED Initial", 60, "(212) 555-0120"),  # suspension day: the resurrection line
        ("Help", "Reso Servicing", 122, "(617) 555-0160"),
    ],
)
def test_help_gets_a_help_reply_with_the_teams_number(webhook_token, text, segment, day, line):
    campaign = running_campaign()
    item = queue_item(campaign, segment=segment, day=day, action_type="BOTH" if day in (60, 122) else "SMS")
    payload = received(item.phone, text)
    assert processed(post(payload)) == "help"
    post(payload)  # a redelivery
    [reply] = queued_replies(item.phone, SmsMessage.Kind.HELP_REPLY)
    assert "reply to this text" in reply.text and "Reply STOP to opt out" in reply.text
    assert line in reply.text
    assert not active_opt_out(item.phone)
    assert not FollowUpTask.objects.exists()


@sends
def test_the_help_reply_is_texted(heymarket_sandbox):
    campaign = running_campaign()
    item = queue_item(campaign, segment="RED Initial", day=20)
    payload = received(item.phone, "HELP")
    post(payload)
    post(payload)
    [reply] = confirmations(item.phone)
    assert reply.text == SmsMessage.objects.get(phone=item.phone, kind=SmsMessage.Kind.HELP_REPLY).text


# --- Replies that need a person -----------------------------------------------------------------


def test_an_ordinary_reply_becomes_a_task_for_the_clients_team(webhook_token):
    campaign = running_campaign()
    billing = queue_item(campaign, segment="RED Initial", day=20, client_name="Ada Lovelace")
    resurrection = queue_item(campaign, segment="Reso Initial", day=90, action_type="BOTH", client_name="Alan Turing")
    assert (billing.team, resurrection.team) == ("billing", "resurrection")

    first = post(received(billing.phone, "I can pay $50 on Friday, is that ok?"))
    second = post(received(resurrection.phone, "Can someone call me after 5pm?", inbox=42020))

    assert processed(first) == processed(second) == "reply_task"
    task = FollowUpTask.objects.get(phone=billing.phone)
    assert task.kind == FollowUpTask.Kind.SMS_REPLY and task.status == FollowUpTask.Status.OPEN
    assert (task.team, task.client_id, task.client_name) == ("billing", billing.client_id, "Ada Lovelace")
    assert task.detail == "I can pay $50 on Friday, is that ok?"
    assert task.due_at > task.created_at
    other = FollowUpTask.objects.get(phone=resurrection.phone)
    assert (other.team, other.client_id) == ("resurrection", resurrection.client_id)
    assert not SmsMessage.objects.filter(phone=billing.phone).exists()  # a person answers, not the dialer


def test_a_redelivered_reply_makes_one_task(webhook_token):
    campaign = running_campaign()
    item = queue_item(campaign)
    payload = received(item.phone, "Who is this?")
    for _ in range(3):
        assert post(payload).status_code == 200
    assert FollowUpTask.objects.filter(phone=item.phone).count() == 1
    assert WebhookEvent.objects.filter(vendor="heymarket").count() == 1


def test_a_reply_from_an_unknown_number_goes_to_the_team_of_its_inbox(webhook_token):
    response = post(received("+13125550177", "hello?", inbox=42020))
    assert processed(response) == "reply_task"
    task = FollowUpTask.objects.get(phone="+13125550177")
    assert task.team == "resurrection" and task.client_id == ""


# --- HeyMarket's own opt-out status and delivery events -------------------------------------------


def _opt_event(kind: str, phone: str) -> dict[str, Any]:
    digits = phone.lstrip("+")
    return {
        "type": kind,
        "id": 4242,
        "token": "shared-webhook-token",
        "event_data": {"id": next(_ids), "target": digits, "phone": digits, "inbox": 41010, "status": "unsubscribed"},
    }


def test_target_opt_out_and_opt_in_events_update_suppressions(webhook_token):
    phone = "+12125550142"
    assert processed(post(_opt_event("target_opt_out", phone))) == "opted_out"
    assert active_opt_out(phone)
    assert processed(post(_opt_event("target_opt_in", phone))) == "opted_in"
    assert not active_opt_out(phone)
    assert not SmsMessage.objects.filter(phone=phone).exists()  # HeyMarket's own events need no answer from us


@sends
def test_a_stop_arriving_after_heymarkets_opt_out_event_still_gets_its_confirmation(heymarket_sandbox):
    campaign = running_campaign()
    item = queue_item(campaign)
    post(_opt_event("target_opt_out", item.phone))
    post(received(item.phone, "STOP"))
    assert len(confirmations(item.phone)) == 1


def _sent_message(campaign, **fields) -> SmsMessage:
    item = queue_item(campaign)
    values = {
        "local_id": f"qi-20250610-{item.client_id}-touchpoint",
        "queue_item": item,
        "campaign": campaign,
        "client_id": item.client_id,
        "phone": item.phone,
        "inbox_id": item.inbox_id,
        "text": "Hi",
        "status": SmsMessage.Status.SENT,
        "heymarket_id": "555001",
    }
    values.update(fields)
    return SmsMessage.objects.create(**values)


def _status_event(message: SmsMessage, status: str, *, event_id: int | None = None) -> dict[str, Any]:
    return {
        "type": "message_sent",
        "id": 4242,
        "token": "shared-webhook-token",
        "event_data": {"id": event_id or int(message.heymarket_id), "local_id": message.local_id, "status": status},
    }


def test_delivery_status_moves_the_message_forward_only(webhook_token):
    campaign = running_campaign()
    message = _sent_message(campaign)
    assert processed(post(_status_event(message, "delivered"))) == "status_delivered"
    message.refresh_from_db()
    assert message.status == SmsMessage.Status.DELIVERED
    # A late "sent" (a different event) cannot take it back.
    late = _status_event(message, "sent")
    late["type"] = "message_status"
    post(late)
    message.refresh_from_db()
    assert message.status == SmsMessage.Status.DELIVERED


def test_an_undelivered_text_keeps_the_reason(webhook_token):
    campaign = running_campaign()
    message = _sent_message(campaign)
    event = _status_event(message, "failed")
    event["event_data"]["error"] = "carrier rejected: landline"
    post(event)
    message.refresh_from_db()
    assert message.status == SmsMessage.Status.FAILED and message.error == "carrier rejected: landline"


def test_a_message_sent_by_an_agent_in_heymarket_is_accepted_and_ignored(webhook_token):
    response = post({"type": "message_sent", "id": 4242, "token": "shared-webhook-token", "event_data": {"id": 1, "status": "sent"}})
    assert processed(response) == "unknown_message"


def test_unknown_event_types_are_stored_and_answered_2xx(webhook_token):
    payload = {"type": "chat_reassigned", "id": 4242, "token": "shared-webhook-token", "event_data": {"id": 77, "assigned": 3}}
    response = post(payload)
    assert processed(response) == "unhandled_type"
    event = WebhookEvent.objects.get(vendor="heymarket")
    assert event.event_type == "chat_reassigned" and event.processed_at is not None
    assert "token" not in event.payload  # the shared secret is never stored


def test_a_processing_failure_keeps_the_event_and_the_retry_processes_it(webhook_token, monkeypatch):
    campaign = running_campaign()
    item = queue_item(campaign)
    payload = received(item.phone, "call me")
    real = sms_inbound.heymarket_event_process

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(sms_inbound, "heymarket_event_process", broken)
    assert post(payload).status_code == 200  # stored: HeyMarket need not deliver it again
    event = WebhookEvent.objects.get(vendor="heymarket")
    assert event.processed_at is None and "database went away" in event.error
    assert not FollowUpTask.objects.exists()
    assert post(payload).json()["status"] == "duplicate"  # a redelivery adds nothing

    monkeypatch.setattr(sms_inbound, "heymarket_event_process", real)
    later = event.received_at + inbox.RETRY_AFTER
    assert inbox.webhook_events_retry(now=later, vendor=WebhookEvent.Vendor.RETELL) == 0
    assert inbox.webhook_events_retry(now=later, vendor=WebhookEvent.Vendor.HEYMARKET) == 1
    assert FollowUpTask.objects.filter(phone=item.phone).count() == 1
    event.refresh_from_db()
    assert event.processed_at is not None and event.error == "" and event.result == "reply_task"
