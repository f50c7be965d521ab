"""Money that goes back: refunds and card disputes, from Stripe's signed events, once each."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from campaigns.metrics.payments import payment_kpis
from campaigns.models import Account, FollowUpTask, Payment, PromiseToPay, WebhookEvent
from campaigns.webhooks import inbox
from integrations import clock
from tests.campaigns.payment_factories import (
    account, session_completed, signed_post, stripe_sandbox,  # noqa: F401 (fixture)
)  # fmt: skip
from tests.campaigns.sms_factories import shipped_cadences  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def hook(live_server) -> str:
    return live_server.url + "/webhooks/stripe/"


def refunded(*, payment_intent: str, cents: int, refunded_cents: int, event_id: str, created: int | None = None) -> dict[str, Any]:
    return {
        "id": event_id, "object": "event", "type": "charge.refunded", "created": created or int(time.time()), "livemode": False,
        "data": {"object": {
            "id": "ch_" + payment_intent, "object": "charge", "amount": cents, "amount_refunded": refunded_cents,
            "payment_intent": payment_intent, "refunded": refunded_cents >= cents, "currency": "usd",
        }},
    }  # fmt: skip


def dispute(*, kind: str, payment_intent: str, cents: int, status: str, event_id: str, created: int) -> dict[str, Any]:
    return {
        "id": event_id, "object": "event", "type": f"charge.dispute.{kind}", "created": created, "livemode": False,
        "data": {"object": {
            "id": "dp_" + payment_intent, "object": "dispute", "amount": cents, "charge": "ch_" + payment_intent,
            "payment_intent": payment_intent, "reason": "fraudulent", "status": status, "currency": "usd",
        }},
    }  # fmt: skip


def pay(url: str, client_id: str, cents: int, pi: str) -> Payment:
    assert signed_post(url, session_completed(client_id=client_id, cents=cents, payment_intent=pi, event_id="evt_pay_" + pi, session_id="cs_" + pi)).status_code == 200
    return Payment.objects.get(reference=pi)


def test_a_refund_takes_the_money_back_once_whatever_the_order(stripe_sandbox):
    today = timezone.localdate(clock.now())  # the portal's day, as the KPIs count it
    account("C-1", amount_due="100.00")
    promise = PromiseToPay.objects.create(client_id="C-1", amount="100.00", promised_date=today + dt.timedelta(days=3), call_id="call_p1")
    url = hook(stripe_sandbox)
    pay(url, "C-1", 10000, "pi_r1")
    promise.refresh_from_db()
    assert promise.status == PromiseToPay.Status.KEPT
    assert Account.objects.get(client_id="C-1").status == Account.Status.RESOLVED

    # Two refunds at Stripe (30 then 30 more): the later event, cumulative 60, arrives first.
    assert signed_post(url, refunded(payment_intent="pi_r1", cents=10000, refunded_cents=6000, event_id="evt_r2")).status_code == 200
    assert signed_post(url, refunded(payment_intent="pi_r1", cents=10000, refunded_cents=3000, event_id="evt_r1")).status_code == 200
    assert signed_post(url, refunded(payment_intent="pi_r1", cents=10000, refunded_cents=6000, event_id="evt_r2")).status_code == 200

    payment = Payment.objects.get(reference="pi_r1")
    assert (payment.refunded_amount, payment.net_amount) == (Decimal("60.00"), Decimal("40.00"))
    acct = Account.objects.get(client_id="C-1")
    assert (acct.amount_due, acct.status) == (Decimal("60.00"), Account.Status.ACTIVE)
    promise.refresh_from_db()
    assert (promise.status, promise.amount_recovered) == (PromiseToPay.Status.PARTLY_KEPT, Decimal("40.00"))
    task = FollowUpTask.objects.get(kind=FollowUpTask.Kind.PAYMENT_REVERSED)
    assert task.client_id == "C-1" and "$60.00 of the $100.00 paid" in task.detail
    kpis = payment_kpis(since=today, until=today, by="source")["total"]
    assert (kpis["amount_recovered"], kpis["amount_reversed"], kpis["payments"]) == ("40.00", "60.00", 1)


def test_a_refund_that_arrives_before_its_payment_waits_for_it(stripe_sandbox):
    account("C-2", amount_due="50.00")
    url = hook(stripe_sandbox)
    assert signed_post(url, refunded(payment_intent="pi_r2", cents=5000, refunded_cents=5000, event_id="evt_early")).status_code == 200
    early = WebhookEvent.objects.get(dedupe_key="evt_early")
    assert early.processed_at is None and "PaymentNotYetKnown" in early.error  # kept, not lost
    pay(url, "C-2", 5000, "pi_r2")
    assert Account.objects.get(client_id="C-2").amount_due == 0
    later = clock.now() + inbox.RETRY_AFTER + dt.timedelta(seconds=1)
    assert inbox.webhook_events_retry(now=later, vendor="stripe") == 1
    assert Payment.objects.get(reference="pi_r2").net_amount == 0
    assert Account.objects.get(client_id="C-2").amount_due == Decimal("50.00")


def test_a_dispute_holds_the_money_until_it_is_won_even_when_its_events_cross(stripe_sandbox):
    account("C-3", amount_due="80.00")
    url = hook(stripe_sandbox)
    pay(url, "C-3", 8000, "pi_d1")
    opened = int(time.time())
    # Closed (won) is delivered before created: the newer state stands.
    assert signed_post(url, dispute(kind="closed", payment_intent="pi_d1", cents=8000, status="won", event_id="evt_d2", created=opened + 60)).status_code == 200
    assert signed_post(url, dispute(kind="created", payment_intent="pi_d1", cents=8000, status="needs_response", event_id="evt_d1", created=opened)).status_code == 200
    payment = Payment.objects.get(reference="pi_d1")
    assert (payment.dispute_status, payment.disputed_amount, payment.net_amount) == ("won", 0, Decimal("80.00"))
    assert Account.objects.get(client_id="C-3").amount_due == 0
    assert not FollowUpTask.objects.filter(kind=FollowUpTask.Kind.PAYMENT_REVERSED).exists()


def test_a_lost_dispute_counts_as_money_not_recovered(stripe_sandbox):
    today = timezone.localdate(clock.now())  # the portal's day, as the KPIs count it
    account("C-4", amount_due="80.00")
    url = hook(stripe_sandbox)
    pay(url, "C-4", 8000, "pi_d2")
    opened = int(time.time())
    signed_post(url, dispute(kind="created", payment_intent="pi_d2", cents=8000, status="needs_response", event_id="evt_d3", created=opened))
    held = Payment.objects.get(reference="pi_d2")
    assert (held.disputed_amount, Account.objects.get(client_id="C-4").amount_due) == (Decimal("80.00"), Decimal("80.00"))
    task = FollowUpTask.objects.get(kind=FollowUpTask.Kind.PAYMENT_REVERSED)
    assert "Card dispute (fraudulent)" in task.detail
    signed_post(url, dispute(kind="closed", payment_intent="pi_d2", cents=8000, status="lost", event_id="evt_d4", created=opened + 5))
    lost = Payment.objects.get(reference="pi_d2")
    assert (lost.dispute_status, lost.net_amount) == ("lost", 0)
    assert Account.objects.get(client_id="C-4").amount_due == Decimal("80.00")  # counted back once
    assert payment_kpis(since=today, until=today, by="segment")["total"]["amount_recovered"] == "0.00"
    assert FollowUpTask.objects.filter(kind=FollowUpTask.Kind.PAYMENT_REVERSED).count() == 1
