"""KPIs from real money: on the page, the API and the CSV, by segment, phase, owner and source."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.models import CallAttempt, Payment, PaymentLink, PromiseToPay, SmsMessage
from campaigns.metrics import payments as payment_kpis
from campaigns.payments import record
from integrations import clock
from tests.campaigns.dashboard_factories import supervisor
from tests.campaigns.payment_factories import account
from tests.campaigns.sms_factories import shipped_cadences  # noqa: F401 (fixture)

# The shipped segments: a transactional test starts from an emptied database.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("shipped_cadences")]


def money_day(settings) -> dt.date:
    settings.SMS_PRICE = "0.01"
    now = clock.now()
    today = timezone.localdate(now)  # the portal's day, as the KPIs count it
    a = account("K-1", amount_due="100.00", owner="ana")
    account("K-2", amount_due="50.00", phone="+12125550148", owner="bo")
    PromiseToPay.objects.create(client_id="K-1", amount="100.00", promised_date=today, call_id="c1", segment_name="RED Initial")
    PromiseToPay.objects.create(client_id="K-2", amount="50.00", promised_date=today, call_id="c2", segment_name="RED Initial")
    link = PaymentLink.objects.create(
        account=a, client_id="K-1", amount="100.00", session_id="cs_1", session_url="https://x.test/s", expires_at=now + dt.timedelta(hours=1),
        segment_name="RED Initial", owner="ana", opens=1, first_opened_at=now,
    )  # fmt: skip
    for n, client in enumerate(["K-1", "K-2"]):
        SmsMessage.objects.create(local_id=f"s{n}", client_id=client, phone="+1", inbox_id="i", text="pay at https://p.test/pay/abc/", status="sent", sent_at=now)
    CallAttempt.objects.create(call_id="c1", client_id="K-1", to_number="+1", placed_at=now, cost=Decimal("0.98"))
    record.payment_record(client_id="K-1", amount="100.00", reference="pi_k1", paid_at=now, source="stripe", now=now, session_id="cs_1")
    record.payment_record(client_id="K-2", amount="20.00", reference="wh_k2", paid_at=now, source="warehouse", now=now)
    assert link.pk and Payment.objects.count() == 2
    return today


def test_the_figures_by_segment_come_from_the_money(settings):
    today = money_day(settings)
    table = payment_kpis.payment_kpis(since=today, until=today, by="segment")
    assert len(table["rows"]) == 1, table["rows"]
    (row,) = table["rows"]
    assert row["segment"] == "RED Initial" and row["amount_recovered"] == "120.00" and row["payments"] == 2
    assert (row["promises_due"], row["promises_kept"], row["promise_kept_rate"]) == (2, 1, 0.5)
    assert (row["links_sent"], row["links_opened"], row["links_completed"]) == (2, 1, 1)
    assert row["link_open_rate"] == 0.5 and row["link_completion_rate"] == 1.0
    assert row["cost"] == "1.00"  # one call at 0.98 and two texts at 0.01
    assert row["cost_per_dollar_recovered"] == round(1.0 / 120, 4)


def test_by_source_and_owner(settings):
    today = money_day(settings)
    by_source = {r["source"]: r["amount_recovered"] for r in payment_kpis.payment_kpis(since=today, until=today, by="source")["rows"]}
    assert by_source == {"stripe": "100.00", "warehouse": "20.00"}
    by_owner = {r["owner"]: r["amount_recovered"] for r in payment_kpis.payment_kpis(since=today, until=today, by="owner")["rows"]}
    assert by_owner == {"ana": "100.00", "bo": "20.00"}
    week = payment_kpis.payment_kpis(since=today - dt.timedelta(days=6), until=today, by="phase")
    assert week["total"]["amount_recovered"] == "120.00"
    before = payment_kpis.payment_kpis(since=today - dt.timedelta(days=30), until=today - dt.timedelta(days=1), by="segment")
    assert before["total"]["amount_recovered"] == "0.00"


@pytest.mark.parametrize("by", ["segment", "phase", "owner", "source"])
def test_every_grouping_gives_the_cost_and_its_rows_add_up_to_the_total(settings, by):
    today = money_day(settings)
    now = clock.now()
    CallAttempt.objects.filter(call_id="c1").update(phase="pre_suspension")
    SmsMessage.objects.filter(local_id="s1").update(phase="past_due")
    # A client who paid nothing still cost something: a call to K-3.
    CallAttempt.objects.create(call_id="c3", client_id="K-3", to_number="+1", placed_at=now, cost=Decimal("0.50"), phase="past_due")
    table = payment_kpis.payment_kpis(since=today, until=today, by=by)
    assert table["total"]["cost"] == "1.50"
    assert sum(Decimal(row["cost"]) for row in table["rows"]) == Decimal("1.50")
    costs = {row[by]: row["cost"] for row in table["rows"]}
    if by == "phase":
        # The call and a text kept their phase; the other text had none.
        assert costs == {"pre_suspension": "0.98", "past_due": "0.51", "": "0.01"}
    if by == "source":
        # K-1 paid through Stripe (a call and a text), K-2 through the warehouse (a text), K-3 not at all.
        assert costs == {"stripe": "0.99", "warehouse": "0.01", "": "0.50"}
        stripe_row = next(row for row in table["rows"] if row["source"] == "stripe")
        assert stripe_row["cost_per_dollar_recovered"] == round(0.99 / 100, 4)


def test_page_api_and_csv_show_them(settings):
    money_day(settings)
    client = Client()
    client.force_login(supervisor())
    page = client.get("/dashboard/kpis/?by=owner")
    assert page.status_code == 200 and "Money recovered" in page.content.decode() and "$120.00" in page.content.decode()
    api = client.get("/api/kpis/payments/?by=source")
    assert api.status_code == 200 and api.json()["today"]["total"]["amount_recovered"] == "120.00"
    assert client.get("/api/kpis/payments/?by=nope").status_code == 400
    exported = client.get("/dashboard/kpis/payments.csv?by=segment")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0][:6] == ["window", "since", "until", "segment", "segment_display", "amount_recovered"]
    totals = [r for r in rows if r[3] == "(all)"]
    assert [r[0] for r in totals] == ["today", "last_7_days", "last_30_days"] and all(r[4:6] == ["All", "120.00"] for r in totals)


def test_phases_and_sources_read_in_words_on_the_page_and_in_the_csv(settings):
    today = money_day(settings)
    Payment.objects.filter(reference="pi_k1").update(phase="past_due")
    Payment.objects.filter(reference="wh_k2").update(phase="pre_suspension")
    by_source = payment_kpis.payment_kpis(since=today, until=today, by="source")["rows"]
    assert {r["source"]: r["display"] for r in by_source} == {"stripe": "Stripe", "warehouse": "Warehouse payments query"}
    client = Client()
    client.force_login(supervisor())
    page = client.get("/dashboard/kpis/?by=phase").content.decode()
    by_phase = payment_kpis.payment_kpis(since=today - dt.timedelta(days=29), until=today, by="phase")["rows"]
    assert {r["phase"]: r["display"] for r in by_phase if r["phase"]} == {"past_due": "Past due", "pre_suspension": "Pre-suspension"}
    assert ">Past due<" in page and ">Pre-suspension<" in page
    assert ">past_due<" not in page and ">pre_suspension<" not in page
    exported = client.get("/dashboard/kpis/payments.csv?by=phase").content.decode()
    rows = list(csv.reader(io.StringIO(exported)))
    assert rows[0][3:5] == ["phase", "phase_display"]
    assert all("_" not in r[4] for r in rows[1:])
