"""The HeyMarket client against its simulator, and inbound replies delivered as webhooks."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from integrations.heymarket import client as heymarket
from integrations.http import IntegrationError
from integrations.sandbox import delivery
from integrations.sandbox import heymarket as simulator
from integrations.sandbox.models import SimulatedMessage

from .conftest import StubServer

PHONE = "+15105550147"


@pytest.mark.usefixtures("sandbox")
class TestAgainstTheSimulator:
    def test_send_records_digits_without_plus_and_answers_id_and_date(self) -> None:
        sent = heymarket.send_message(inbox_id="101", phone=PHONE, text="Hi Zoë, a reminder from the billing team.", local_id="sms-1")
        assert sent.id and sent.date.endswith("Z")
        message = SimulatedMessage.objects.get(pk=int(sent.id))
        assert message.phone == "15105550147" and message.inbox_id == "101" and message.local_id == "sms-1"
        assert message.text == "Hi Zoë, a reminder from the billing team."

    def test_the_same_local_id_sends_once(self) -> None:
        first = heymarket.send_message(inbox_id="101", phone=PHONE, text="one", local_id="sms-dup")
        second = heymarket.send_message(inbox_id="101", phone=PHONE, text="one", local_id="sms-dup")
        assert first == second
        assert SimulatedMessage.objects.filter(local_id="sms-dup").count() == 1

    def test_contact_status_round_trip(self) -> None:
        unknown = heymarket.get_contact_status("+15105550999")
        assert unknown["exists"] is False and unknown["opted_out"] is False
        heymarket.set_contact_status(PHONE, opted_out=True)
        status = heymarket.get_contact_status(PHONE)
        assert status["opted_out"] is True and status["unsubscribed"] is True and status["phone"] == "15105550147"
        heymarket.set_contact_status(PHONE, opted_out=False)
        assert heymarket.get_contact_status(PHONE)["opted_out"] is False

    def test_an_opted_out_contact_cannot_be_texted(self) -> None:
        heymarket.set_contact_status(PHONE, opted_out=True)
        with pytest.raises(IntegrationError) as excinfo:
            heymarket.send_message(inbox_id="101", phone=PHONE, text="hello", local_id="sms-2")
        assert excinfo.value.permanent and excinfo.value.status == 400 and "opted out" in str(excinfo.value)

    def test_numbers_that_are_not_e164_never_leave(self) -> None:
        with pytest.raises(IntegrationError) as excinfo:
            heymarket.send_message(inbox_id="101", phone="5105550147", text="hello", local_id="sms-3")
        assert excinfo.value.permanent
        assert SimulatedMessage.objects.count() == 0

    def test_the_simulator_answers_400_for_a_bad_request(self) -> None:
        from integrations import http

        with pytest.raises(IntegrationError) as excinfo:
            http.request(
                "heymarket", "POST", heymarket.base_url() + "/v1/message/send", idempotent=True,
                json={"inbox_id": 1, "creator_id": 1, "phone_number": "+15105550147", "text": "x", "local_id": "l"},
                headers={"Authorization": f"Bearer {heymarket.api_token()}"},
            )
        assert excinfo.value.status == 400 and excinfo.value.permanent and "without '+'" in str(excinfo.value)

    def test_an_injected_stop_arrives_as_webhooks_with_the_token(self, settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
        heymarket.send_message(inbox_id="202", phone=PHONE, text="reminder", local_id="sms-4")
        # The client's reply, as staff play it from the sandbox controls.
        simulator.inject_inbound(phone=PHONE, text=" stop ", now=timezone.now())
        live_url = settings.SANDBOX_APP_URL
        settings.SANDBOX_APP_URL = stub_server.url  # the app's webhook endpoint, recorded
        assert delivery.sandbox_dispatch_due(now=timezone.now() + dt.timedelta(seconds=5)) == 2
        received, opted_out = (r.json() for r in stub_server.requests)
        assert all(r.path == "/webhooks/heymarket/" for r in stub_server.requests)
        assert received["type"] == "message_recieved" and opted_out["type"] == "target_opt_out"  # type: ignore[index]
        for event in (received, opted_out):
            assert heymarket.verify_webhook_token(event["token"])  # type: ignore[index]
            assert event["event_data"]["target"] == "15105550147"  # type: ignore[index]
            assert event["event_data"]["inbox"] == 202  # type: ignore[index]
        assert received["event_data"]["text"] == " stop "  # type: ignore[index]
        settings.SANDBOX_APP_URL = live_url
        assert heymarket.get_contact_status(PHONE)["opted_out"] is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "events"),
    [
        ("STOP", ["message_recieved", "target_opt_out"]),
        ("opt   out", ["message_recieved", "target_opt_out"]),
        ("Unsubscribe", ["message_recieved", "target_opt_out"]),
        ("START", ["message_recieved", "target_opt_in"]),
        ("Please stop calling me at work", ["message_recieved"]),
        ("HELP", ["message_recieved"]),
    ],
)
def test_only_a_whole_message_opt_word_opts_out(text: str, events: list[str]) -> None:
    message = simulator.inject_inbound(phone=PHONE, text=text, now=timezone.now())
    from integrations.sandbox.models import SimulatedDelivery

    assert [d.event for d in SimulatedDelivery.objects.filter(reference=str(message.pk)).order_by("due_at")] == events


def test_verify_webhook_token_is_strict(settings) -> None:  # type: ignore[no-untyped-def]
    settings.HEYMARKET_WEBHOOK_TOKEN = "s3cret-token"
    assert heymarket.verify_webhook_token("s3cret-token")
    for wrong in ("s3cret-tokeN", "s3cret-token ", "", None, 123, b"s3cret-token", ["s3cret-token"]):
        assert not heymarket.verify_webhook_token(wrong)
    settings.HEYMARKET_WEBHOOK_TOKEN = ""
    assert not heymarket.verify_webhook_token("")


def test_live_send_puts_ids_as_numbers_and_digits_on_the_wire(settings, stub_server: StubServer, fast_retries: None) -> None:  # type: ignore[no-untyped-def]
    settings.HEYMARKET_API_TOKEN = "hm-live"
    settings.HEYMARKET_BASE_URL = stub_server.url
    settings.HEYMARKET_CREATOR_ID = "55"
    stub_server.answer((429, {"error": "rate limited"}), (200, {"id": 9980041, "date": "2026-03-02T15:00:00Z"}))
    sent = heymarket.send_message(inbox_id="42", phone=PHONE, text="hello", local_id="loc-1")
    assert sent == heymarket.SentMessage(id="9980041", date="2026-03-02T15:00:00Z")
    assert len(stub_server.requests) == 2  # 429 retried: the local_id makes it safe
    body = stub_server.requests[-1].json()
    assert body == {"inbox_id": 42, "creator_id": 55, "phone_number": "15105550147", "text": "hello", "local_id": "loc-1"}
    assert stub_server.requests[-1].headers["Authorization"] == "Bearer hm-live"
