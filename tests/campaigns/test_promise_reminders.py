"""A promise to pay is reminded by text the day before it is due: once, through the SMS gate,
over real HTTP to the sandbox HeyMarket."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from campaigns.models import ContactLedgerEntry, GateDecision, PromiseToPay, SmsMessage, Suppression
from campaigns.compliance import ledger
from campaigns.sms import outbound as sms
from tests.campaigns.sms_factories import shipped_cadences  # noqa: F401 (fixture)
from tests.campaigns.test_sms_send import heymarket_sandbox, outbound  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

NY = ZoneInfo("America/New_York")
DUE = dt.date(2025, 6, 13)
REMINDER_AT = dt.datetime(2025, 6, 12, 9, 0, tzinfo=NY)


def promise(**fields) -> PromiseToPay:
    values = {
        "client_id": "C-PTP-1", "client_name": "Jordan Avery", "phone": "+12125550147", "segment_name": "RED Initial",
        "phase": "past_due", "amount": Decimal("120.50"), "promised_date": DUE, "call_id": "call_ptp_1", "reminder_at": REMINDER_AT,
    }  # fmt: skip
    values.update(fields)
    return PromiseToPay.objects.create(**values)


def test_the_reminder_goes_out_once_inside_the_sms_window(heymarket_sandbox) -> None:
    kept = promise(call_id="call_ptp_kept", client_id="C-PTP-2", phone="+12125550148", status=PromiseToPay.Status.KEPT)
    pending = promise()
    assert sms.promise_reminders_send_due(now=REMINDER_AT - dt.timedelta(minutes=1)) == 0  # not yet due
    assert sms.promise_reminders_send_due(now=REMINDER_AT + dt.timedelta(minutes=30)) == 0  # before the 10:00 SMS window
    assert not SmsMessage.objects.exists()

    at_ten = dt.datetime(2025, 6, 12, 10, 5, tzinfo=NY)
    assert sms.promise_reminders_send_due(now=at_ten) == 1
    (sent,) = outbound(pending.phone)
    assert "Jordan" in sent.text and "$120.50" in sent.text and "Friday, June 13" in sent.text and "Reply STOP" in sent.text
    assert "card" not in sent.text.lower()
    message = SmsMessage.objects.get(local_id="ptp-call_ptp_1")
    assert message.kind == SmsMessage.Kind.PROMISE_REMINDER and message.text == sent.text and message.status == "sent"
    assert ContactLedgerEntry.objects.filter(kind="sms", reference=message.local_id).count() == 1

    assert sms.promise_reminders_send_due(now=at_ten + dt.timedelta(minutes=1)) == 0  # once, however often it runs
    assert len(outbound(pending.phone)) == 1 and outbound(kept.phone) == []


def test_a_number_suppressed_for_texts_gets_no_reminder_and_the_block_is_recorded(heymarket_sandbox) -> None:
    blocked = promise()
    ledger.suppression_add(reason=Suppression.Reason.SMS_OPT_OUT, channel=Suppression.Channel.SMS, source="test", phone=blocked.phone)
    at_ten = dt.datetime(2025, 6, 12, 10, 5, tzinfo=NY)
    assert sms.promise_reminders_send_due(now=at_ten) == 0
    assert sms.promise_reminders_send_due(now=at_ten + dt.timedelta(minutes=1)) == 0
    assert outbound(blocked.phone) == []
    message = SmsMessage.objects.get(local_id="ptp-call_ptp_1")
    assert message.status == "failed" and "not sent" in message.error
    assert GateDecision.objects.filter(client_id=blocked.client_id, channel="sms").count() == 1
