"""The link texted to a client ready to pay on a call, and the warehouse as a second payment source."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal

import pytest

from campaigns.models import CallAttempt, GateDecision, Payment, SmsMessage, Suppression, WarehousePaymentsQuery
from campaigns.payments import warehouse as warehouse_payments
from campaigns.sms import outbound
from integrations.sandbox.models import SimulatedMessage
from tests.campaigns.payment_factories import account, intent_succeeded, signed_post, stripe_sandbox  # noqa: F401 (fixture)
from tests.campaigns.sms_factories import shipped_cadences  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

NOON_NY = dt.datetime(2026, 3, 10, 17, 0, tzinfo=dt.timezone.utc)  # 13:00 in New York


def analysed_call(call_id: str, client_id: str, *, wants_link: object = True) -> CallAttempt:
    return CallAttempt.objects.create(
        call_id=call_id, client_id=client_id, to_number="+12125550147", status=CallAttempt.Status.ENDED, outcome="answered",
        analyzed=True, ended_at=NOON_NY, custom_analysis={"payment_link_requested": wants_link},
    )  # fmt: skip


def test_a_client_ready_to_pay_gets_the_link_once_per_call(stripe_sandbox):
    account("C-10")
    analysed_call("call_ready", "C-10")

    assert outbound.payment_link_send(call_id="call_ready", now=NOON_NY) is True
    assert outbound.payment_link_send(call_id="call_ready", now=NOON_NY) is False
    assert outbound.payment_links_send_due(now=NOON_NY) == 0

    (sent,) = SimulatedMessage.objects.filter(direction="outbound")
    assert sent.phone == "12125550147" and "/pay/" in sent.text and "STOP" in sent.text
    message = SmsMessage.objects.get(local_id="paylink-call_ready")
    assert (message.kind, message.status) == (SmsMessage.Kind.PAYMENT_LINK, SmsMessage.Status.SENT)


def test_the_link_goes_through_the_sms_gate(stripe_sandbox):
    account("C-11")
    analysed_call("call_optout", "C-11", wants_link="yes")
    Suppression.objects.create(client_id="C-11", channel=Suppression.Channel.SMS, reason=Suppression.Reason.SMS_OPT_OUT, source="test")
    late = NOON_NY.replace(hour=3)  # 22:00 the evening before in New York

    assert outbound.payment_link_send(call_id="call_optout", now=late) is False

    assert not SimulatedMessage.objects.exists()
    assert GateDecision.objects.get().rule == "suppressed"
    assert SmsMessage.objects.get().status == SmsMessage.Status.FAILED


def test_no_link_unless_the_analysis_asks_for_one(stripe_sandbox):
    account("C-12")
    analysed_call("call_no", "C-12", wants_link=False)
    assert outbound.payment_link_send(call_id="call_no", now=NOON_NY) is False
    assert not SmsMessage.objects.exists()


def test_warehouse_payments_are_recorded_once_and_deduplicated_with_stripe(stripe_sandbox, sample_warehouse):
    account("C-20", amount_due="90.00")
    account("C-21", amount_due="40.00", phone="+12125550148")
    with sqlite3.connect(sample_warehouse.path) as db:
        db.execute("CREATE TABLE payments (client_id TEXT, amount REAL, paid_at TEXT, reference TEXT)")
        db.executemany(
            "INSERT INTO payments VALUES (?, ?, ?, ?)",
            [("C-20", 90.0, "2026-03-10T15:00:00+00:00", "pi_shared"), ("C-21", 15.5, "2026-03-10", "ledger-77"), ("C-21", -3, "2026-03-10", "bad")],
        )
    query = WarehousePaymentsQuery.load()
    query.sql = "SELECT client_id, amount, paid_at, reference FROM payments"
    query.save()
    # Stripe told us about pi_shared first.
    signed_post(stripe_sandbox.url + "/webhooks/stripe/", intent_succeeded(client_id="C-20", cents=9000, payment_intent="pi_shared", event_id="evt_s"))

    first = warehouse_payments.warehouse_payments_poll(now=NOON_NY)
    again = warehouse_payments.warehouse_payments_poll(now=NOON_NY, force=True)

    assert (first.rows, first.new, first.known, first.rejected) == (3, 1, 1, 1)
    assert (again.new, again.known) == (0, 2)
    assert sorted(Payment.objects.values_list("reference", "source")) == [("ledger-77", "warehouse"), ("pi_shared", "stripe")]
    assert Payment.objects.get(reference="ledger-77").amount == Decimal("15.50")


def test_a_ledger_row_naming_the_providers_payment_is_the_same_payment(stripe_sandbox, sample_warehouse):
    account("C-22", amount_due="90.00")
    with sqlite3.connect(sample_warehouse.path) as db:
        db.execute("CREATE TABLE ledger (client_id TEXT, amount REAL, paid_at TEXT, reference TEXT, provider_reference TEXT)")
        db.execute("INSERT INTO ledger VALUES ('C-22', 90.0, '2026-03-10T15:00:00+00:00', 'txn-9001', 'pi_via_link')")
    query = WarehousePaymentsQuery.load()
    query.sql = "SELECT client_id, amount, paid_at, reference, provider_reference FROM ledger"
    query.save()
    signed_post(stripe_sandbox.url + "/webhooks/stripe/", intent_succeeded(client_id="C-22", cents=9000, payment_intent="pi_via_link", event_id="evt_l"))
    report = warehouse_payments.warehouse_payments_poll(now=NOON_NY)
    assert (report.new, report.known) == (0, 1)
    assert list(Payment.objects.values_list("reference", "source")) == [("pi_via_link", "stripe")]


def test_the_payments_query_must_be_read_only(stripe_sandbox, sample_warehouse):
    query = WarehousePaymentsQuery.load()
    query.sql = "DELETE FROM payments"
    query.save()
    report = warehouse_payments.warehouse_payments_poll(now=NOON_NY)
    assert report.error and not Payment.objects.exists()
    assert WarehousePaymentsQuery.load().last_error
