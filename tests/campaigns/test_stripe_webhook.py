"""`POST /webhooks/stripe/`: signed by the library's scheme, once per event, one payment per reference."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
import requests

from campaigns.models import (
    Account, Campaign, FollowUpTask, Payment, PaymentLink, PromiseToPay, QueueItem, WebhookEvent,
)  # fmt: skip
from campaigns.payments import links, record
from integrations.sandbox.models import SimulatorConfig
from integrations import clock
from tests.campaigns.payment_factories import (
    account, deliver_all, intent_succeeded, path_of, session_completed, signed_post, stripe_sandbox,  # noqa: F401 (fixture)
)  # fmt: skip
from tests.campaigns.sms_factories import queue_item, shipped_cadences  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def hook(live_server) -> str:
    return live_server.url + "/webhooks/stripe/"


def test_a_paid_link_records_one_payment_keeps_the_promise_and_skips_the_day(stripe_sandbox):
    today = clock.now().date()
    campaign = Campaign.objects.create(date=today, status=Campaign.Status.RUNNING)
    item = queue_item(campaign, client_id="C-1", phone="+12125550147")
    Account.objects.filter(client_id="C-1").update(amount_due=Decimal("120.50"))
    acct = Account.objects.get(client_id="C-1")
    promise = PromiseToPay.objects.create(client_id="C-1", amount="120.00", promised_date=today + dt.timedelta(days=2), call_id="call_1")
    queued_before = QueueItem.objects.get(pk=item.pk).status
    # The client opens the link and pays on the (simulated) hosted page.
    page = requests.get(stripe_sandbox.url + path_of(links.secure_link(acct)), timeout=20)
    assert page.status_code == 200 and "paying" in page.text

    deliver_all()

    payment = Payment.objects.get()
    assert (payment.client_id, payment.amount, payment.source) == ("C-1", Decimal("120.50"), "stripe")
    assert payment.reference.startswith("pi_test_")
    assert WebhookEvent.objects.filter(vendor="stripe").count() == 2  # completed + payment_intent, same payment
    acct.refresh_from_db()
    assert acct.amount_due == 0 and acct.status == Account.Status.RESOLVED
    promise.refresh_from_db()
    assert promise.status == PromiseToPay.Status.KEPT and promise.amount_recovered == Decimal("120.50")
    assert PaymentLink.objects.get().status == PaymentLink.Status.COMPLETE
    item.refresh_from_db()
    assert queued_before in (QueueItem.Status.QUEUED, QueueItem.Status.SMS_SCHEDULED)
    assert (item.status, item.skip_reason) == (QueueItem.Status.SKIPPED, "paid")
    campaign.refresh_from_db()
    assert campaign.skipped == 1


def test_duplicated_and_reordered_events_make_one_payment(stripe_sandbox):
    account("C-2", amount_due="80.00")
    url = hook(stripe_sandbox)
    events = [
        intent_succeeded(client_id="C-2", cents=8000, payment_intent="pi_9", event_id="evt_b"),
        session_completed(client_id="C-2", cents=8000, payment_intent="pi_9", event_id="evt_a"),
    ]
    answers = [signed_post(url, e).status_code for e in events + events + [events[0]]]
    assert answers == [200] * 5
    assert Payment.objects.count() == 1 and WebhookEvent.objects.filter(vendor="stripe").count() == 2
    assert Account.objects.get(client_id="C-2").amount_due == 0


def test_forged_and_stale_signatures_are_refused_with_nothing_stored(stripe_sandbox):
    account("C-3")
    url = hook(stripe_sandbox)
    event = session_completed(client_id="C-3", cents=1000, payment_intent="pi_3", event_id="evt_3")
    assert signed_post(url, event, secret="whsec_wrong").status_code == 400
    assert signed_post(url, event, timestamp=int(time.time()) - 301).status_code == 400
    assert requests.post(url, json=event, timeout=10).status_code == 400  # no header
    assert not WebhookEvent.objects.exists() and not Payment.objects.exists()
    assert signed_post(url, event, timestamp=int(time.time()) - 290).status_code == 200
    assert Payment.objects.count() == 1


def test_a_partial_payment_keeps_the_promise_in_part_within_the_tolerance(stripe_sandbox, settings):
    settings.PROMISE_KEPT_TOLERANCE = "1.00"
    account("C-4", amount_due="200.00")
    due = clock.now().date() + dt.timedelta(days=1)
    promise = PromiseToPay.objects.create(client_id="C-4", amount="100.00", promised_date=due, call_id="call_4")
    url = hook(stripe_sandbox)
    signed_post(url, intent_succeeded(client_id="C-4", cents=5000, payment_intent="pi_4a", event_id="evt_4a"))
    promise.refresh_from_db()
    assert promise.status == PromiseToPay.Status.PARTLY_KEPT and promise.amount_recovered == Decimal("50.00")
    signed_post(url, intent_succeeded(client_id="C-4", cents=4950, payment_intent="pi_4b", event_id="evt_4b"))
    promise.refresh_from_db()
    assert promise.status == PromiseToPay.Status.KEPT  # 99.50 of 100.00, inside the $1 tolerance
    assert Account.objects.get(client_id="C-4").amount_due == Decimal("100.50")


def test_an_unknown_client_is_stored_and_opens_a_match_task(stripe_sandbox):
    response = signed_post(hook(stripe_sandbox), intent_succeeded(client_id="NOPE", cents=2500, payment_intent="pi_x", event_id="evt_x"))
    assert response.status_code == 200
    payment = Payment.objects.get()
    assert payment.account is None and payment.client_id == "NOPE"
    task = FollowUpTask.objects.get()
    assert task.kind == FollowUpTask.Kind.LOW_CONFIDENCE_MATCH and "pi_x" in task.detail


def test_other_events_are_accepted_and_logged(stripe_sandbox):
    event = {"id": "evt_o", "object": "event", "type": "customer.created", "created": int(time.time()), "data": {"object": {"id": "cus_1"}}}
    assert signed_post(hook(stripe_sandbox), event).status_code == 200
    stored = WebhookEvent.objects.get()
    assert stored.result == "ignored_event_type" and not Payment.objects.exists()


def test_an_unpaid_completion_waits_and_a_failed_async_payment_marks_the_link(stripe_sandbox):
    account("C-5")
    url = hook(stripe_sandbox)
    pending = session_completed(client_id="C-5", cents=1000, payment_intent="pi_5", event_id="evt_5")
    pending["data"]["object"]["payment_status"] = "unpaid"
    signed_post(url, pending)
    failed = dict(pending, id="evt_5f", type="checkout.session.async_payment_failed")
    signed_post(url, failed)
    assert not Payment.objects.exists()
    assert list(WebhookEvent.objects.order_by("pk").values_list("result", flat=True)) == ["awaiting_payment", "payment_failed"]
    succeeded = dict(pending, id="evt_5s", type="checkout.session.async_payment_succeeded")
    succeeded["data"] = {"object": dict(pending["data"]["object"], payment_status="paid")}
    signed_post(url, succeeded)
    assert Payment.objects.get().reference == "pi_5"


def test_a_payment_late_on_the_promised_day_in_the_clients_zone_keeps_the_promise(db):
    # 21:30 in Los Angeles on June 20 is already June 21 in the portal's zone (New York).
    west = account("C-WEST", phone="+14155550142")
    Account.objects.filter(pk=west.pk).update(timezones="America/Los_Angeles", state="CA")
    promise = PromiseToPay.objects.create(client_id="C-WEST", amount=Decimal("50.00"), promised_date=dt.date(2025, 6, 20), call_id="c-west")
    paid_at = dt.datetime(2025, 6, 21, 4, 30, tzinfo=dt.timezone.utc)
    record.payment_record(client_id="C-WEST", amount="50.00", reference="pi_west", paid_at=paid_at, source="warehouse", now=paid_at)
    promise.refresh_from_db()
    assert promise.status == PromiseToPay.Status.KEPT


def test_a_payment_closes_the_clients_other_open_payment_pages_at_stripe(stripe_sandbox):
    acct = account("C-TABS", amount_due="80.00")
    promise = PromiseToPay.objects.create(client_id="C-TABS", amount="30.00", promised_date=clock.now().date() + dt.timedelta(days=3), call_id="c-tabs")
    config = SimulatorConfig.load()
    config.stripe_completion_rate = 0.0  # the first page is looked at, not paid
    config.save()
    balance_page = requests.get(stripe_sandbox.url + path_of(links.secure_link(acct)), timeout=20)
    assert balance_page.status_code == 200
    balance = PaymentLink.objects.get(purpose="balance")
    config.stripe_completion_rate = 1.0
    config.save()
    requests.get(stripe_sandbox.url + path_of(links.secure_link(acct, links.PROMISE, promise_id=promise.pk)), timeout=20)
    deliver_all()
    assert Payment.objects.get().amount == Decimal("30.00")
    balance.refresh_from_db()
    assert balance.status == PaymentLink.Status.EXPIRED
    # Closed at Stripe too: the balance page can no longer be paid.
    page = requests.get(balance.session_url, timeout=20)
    assert page.status_code == 410 and "expired" in page.text
