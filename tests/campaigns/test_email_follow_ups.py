"""Follow-up e-mails: the payment link and a promise's summary go by e-mail when a text cannot,
or as a second channel; sent through Django's SMTP backend to a real local SMTP server."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from cadences.models import DialerSettings
from campaigns.conversations import results
from campaigns.dashboard.selectors import client_timeline
from campaigns.mail import followups as mail
from campaigns.models import CallAttempt, EmailMessage, SmsMessage, Suppression
from campaigns.sms import outbound
from integrations.sandbox.models import SimulatedContact, SimulatedMessage
from tests.campaigns.payment_factories import account, stripe_sandbox  # noqa: F401 (fixture)
from tests.campaigns.smtp_server import free_port, smtp_server  # noqa: F401 (fixture)
from tests.campaigns.sms_factories import shipped_cadences  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

NOON_NY = dt.datetime(2026, 3, 10, 17, 0, tzinfo=dt.timezone.utc)  # 13:00 in New York
BASE = "https://portal.example.com"


@pytest.fixture(autouse=True)
def public_base(settings):
    settings.PUBLIC_BASE_URL = BASE


def analysed_call(call_id: str, client_id: str, *, phone: str = "+12125550147") -> CallAttempt:
    return CallAttempt.objects.create(
        call_id=call_id, client_id=client_id, to_number=phone, status=CallAttempt.Status.ENDED, outcome="answered",
        analyzed=True, ended_at=NOON_NY, custom_analysis={"payment_link_requested": True},
    )  # fmt: skip


def opt_out_of_texts(client_id: str) -> None:
    Suppression.objects.create(client_id=client_id, channel=Suppression.Channel.SMS, reason=Suppression.Reason.SMS_OPT_OUT, source="test")


def follow_ups(mode: str) -> None:
    dialer = DialerSettings.load()
    dialer.email_follow_ups = mode
    dialer.save()


def parts(message):
    return {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}


def test_a_client_who_opted_out_of_texts_gets_the_payment_link_by_email(stripe_sandbox, smtp_server):
    account("C-30", email="jordan.avery@example.com")
    analysed_call("call_e1", "C-30")
    opt_out_of_texts("C-30")

    assert outbound.payment_link_send(call_id="call_e1", now=NOON_NY) is False  # no text
    assert not SimulatedMessage.objects.exists()
    assert SmsMessage.objects.get().status == SmsMessage.Status.FAILED

    (received,) = smtp_server.messages
    assert smtp_server.envelopes == [("billing@example.com", ["jordan.avery@example.com"])]
    assert received["To"] == "jordan.avery@example.com"
    assert received["From"] == "Billing Team <billing@example.com>"
    assert received["Subject"] == "Billing Team: your secure payment link"
    assert received.get_content_type() == "multipart/alternative"
    body = parts(received)
    assert set(body) == {"text/plain", "text/html"}
    unsubscribe = re.fullmatch(r"<(.+)>", received["List-Unsubscribe"]).group(1)
    assert unsubscribe.startswith(f"{BASE}/email/unsubscribe/")
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (link,) = re.findall(r"https?://\S+/pay/\S+/", body["text/plain"])
    assert f'href="{link}"' in body["text/html"]
    assert "Hi Jordan," in body["text/plain"] and "Hi Jordan," in body["text/html"]
    assert unsubscribe in body["text/plain"] and f'href="{unsubscribe}"' in body["text/html"]
    email_row = EmailMessage.objects.get()
    assert (email_row.kind, email_row.status, email_row.to_address) == (EmailMessage.Kind.PAYMENT_LINK, EmailMessage.Status.SENT, "jordan.avery@example.com")
    assert "opted out of texts" in email_row.why
    titles = [e.title for e in client_timeline(client_id="C-30").events if e.kind == "email"]
    assert titles == ["E-mail — Payment link (sent)"]

    # Once per call, however often the sweep looks again.
    outbound.payment_link_send(call_id="call_e1", now=NOON_NY)
    outbound.payment_links_send_due(now=NOON_NY)
    mail.emails_send_due(now=NOON_NY + dt.timedelta(hours=1))
    assert len(smtp_server.messages) == 1


def test_a_landline_gets_no_text_but_the_link_by_email(stripe_sandbox, smtp_server):
    account("C-31", email="a@example.com", phone="+442079460123")
    analysed_call("call_e2", "C-31", phone="+442079460123")
    assert outbound.payment_link_send(call_id="call_e2", now=NOON_NY) is False
    assert not SimulatedMessage.objects.exists()
    assert "landline" in SmsMessage.objects.get().error
    assert len(smtp_server.messages) == 1 and "landline" in EmailMessage.objects.get().why


def test_no_email_without_an_address_or_when_every_channel_is_suppressed(stripe_sandbox, smtp_server):
    account("C-32", email="")
    analysed_call("call_e3", "C-32")
    opt_out_of_texts("C-32")
    account("C-33", email="b@example.com", phone="+12125550148")
    analysed_call("call_e4", "C-33", phone="+12125550148")
    opt_out_of_texts("C-33")
    Suppression.objects.create(client_id="C-33", channel=Suppression.Channel.ALL, reason=Suppression.Reason.DISPUTE_HOLD, source="test")
    outbound.payment_link_send(call_id="call_e3", now=NOON_NY)
    outbound.payment_link_send(call_id="call_e4", now=NOON_NY)
    assert smtp_server.messages == [] and not EmailMessage.objects.exists()


def test_a_textable_client_gets_the_text_only_unless_email_is_a_second_channel(stripe_sandbox, smtp_server):
    account("C-34", email="c@example.com")
    analysed_call("call_e5", "C-34")
    assert outbound.payment_link_send(call_id="call_e5", now=NOON_NY) is True
    assert smtp_server.messages == []

    follow_ups(DialerSettings.EmailFollowUps.ALSO)
    account("C-35", email="d@example.com", phone="+12125550149")
    analysed_call("call_e6", "C-35", phone="+12125550149")
    assert outbound.payment_link_send(call_id="call_e6", now=NOON_NY) is True
    assert SimulatedMessage.objects.filter(direction="outbound").count() == 2
    (received,) = smtp_server.messages
    assert received["To"] == "d@example.com" and EmailMessage.objects.get().why == "E-mail is a second channel."


def test_email_follow_ups_can_be_turned_off(stripe_sandbox, smtp_server):
    follow_ups(DialerSettings.EmailFollowUps.OFF)
    account("C-36", email="e@example.com")
    analysed_call("call_e7", "C-36")
    opt_out_of_texts("C-36")
    outbound.payment_link_send(call_id="call_e7", now=NOON_NY)
    assert smtp_server.messages == []


def test_a_promise_summary_goes_by_email_to_a_client_who_cannot_be_texted(stripe_sandbox, smtp_server):
    account("C-37", email="f@example.com")
    opt_out_of_texts("C-37")
    context = results.context_for_client(client_id="C-37", phone="+12125550147", now=NOON_NY)
    promise, _ = results.promise_create(context=context, call_id="call_p1", promised=dt.date(2026, 3, 20), amount=Decimal("75.00"), now=NOON_NY)

    assert mail.promise_summary_email(promise_id=promise.pk, now=NOON_NY) is True
    (received,) = smtp_server.messages
    assert received["Subject"] == "Billing Team: the payment you arranged for March 20, 2026"
    body = parts(received)
    assert "payment of $75.00 for March 20, 2026" in body["text/plain"]
    assert "<strong>$75.00</strong>" in body["text/html"] and "/pay/" in body["text/html"]
    assert received["List-Unsubscribe"].startswith(f"<{BASE}/email/unsubscribe/")
    assert mail.promise_summary_email(promise_id=promise.pk, now=NOON_NY) is False  # once
    assert len(smtp_server.messages) == 1


def test_a_promise_summary_waits_for_no_email_when_the_client_can_be_texted(stripe_sandbox, smtp_server):
    account("C-38", email="g@example.com")
    context = results.context_for_client(client_id="C-38", phone="+12125550147", now=NOON_NY)
    promise, _ = results.promise_create(context=context, call_id="call_p2", promised=dt.date(2026, 3, 20), amount=None, now=NOON_NY)
    assert mail.promise_summary_email(promise_id=promise.pk, now=NOON_NY) is False
    follow_ups(DialerSettings.EmailFollowUps.ALSO)
    assert mail.promise_summary_email(promise_id=promise.pk, now=NOON_NY) is True
    assert "for March 20, 2026" in parts(smtp_server.messages[0])["text/plain"]


def test_the_unsubscribe_link_records_an_email_opt_out_that_is_honoured(client, stripe_sandbox, smtp_server):
    account("C-39", email="h@example.com")
    opt_out_of_texts("C-39")
    analysed_call("call_e8", "C-39")
    outbound.payment_link_send(call_id="call_e8", now=NOON_NY)
    url = re.fullmatch(r"<(.+)>", smtp_server.messages[0]["List-Unsubscribe"]).group(1)
    path = url.removeprefix(BASE)

    page = client.get(path)  # a link scanner's visit unsubscribes nobody
    assert page.status_code == 200 and b"<form" in page.content
    assert not Suppression.objects.filter(channel=Suppression.Channel.EMAIL).exists()

    # The one-click POST a mail client sends (no CSRF token), twice: one suppression.
    assert client.post(path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded").status_code == 200
    assert client.post(path).status_code == 200
    suppression = Suppression.objects.get(channel=Suppression.Channel.EMAIL)
    assert (suppression.client_id, suppression.reason, suppression.lifted_at) == ("C-39", Suppression.Reason.EMAIL_OPT_OUT, None)

    analysed_call("call_e9", "C-39")
    outbound.payment_link_send(call_id="call_e9", now=NOON_NY)
    assert len(smtp_server.messages) == 1  # nothing more after unsubscribing

    forged = path.rstrip("/")[:-3] + "xyz/"
    assert client.post(forged).status_code == 404
    assert Suppression.objects.filter(channel=Suppression.Channel.EMAIL).count() == 1


def test_an_email_the_mail_server_refuses_is_retried_until_it_goes(stripe_sandbox, smtp_server, settings):
    real_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nobody listens there
    account("C-40", email="i@example.com")
    opt_out_of_texts("C-40")
    analysed_call("call_e10", "C-40")
    outbound.payment_link_send(call_id="call_e10", now=NOON_NY)
    row = EmailMessage.objects.get()
    assert (row.status, row.send_attempts) == (EmailMessage.Status.PENDING, 1) and row.error
    assert mail.emails_send_due(now=NOON_NY) == 0  # not before its retry time

    settings.EMAIL_PORT = real_port
    assert mail.emails_send_due(now=NOON_NY + dt.timedelta(minutes=6)) == 1
    row.refresh_from_db()
    assert (row.status, row.send_attempts, row.error) == (EmailMessage.Status.SENT, 2, "")
    assert len(smtp_server.messages) == 1


def test_a_text_the_sms_provider_refuses_is_followed_by_the_link_by_email(stripe_sandbox, smtp_server):
    account("C-41", email="j@example.com", phone="+12125550150")
    analysed_call("call_e11", "C-41", phone="+12125550150")
    SimulatedContact.objects.create(phone="12125550150", blocked=True)  # HeyMarket answers 400

    assert outbound.payment_link_send(call_id="call_e11", now=NOON_NY) is False
    assert SmsMessage.objects.get().status == SmsMessage.Status.FAILED
    (received,) = smtp_server.messages
    assert received["To"] == "j@example.com" and EmailMessage.objects.get().why == "The text could not be sent: the text was refused."
