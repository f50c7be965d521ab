"""`/pay/<token>/`: the real stripe library makes a Checkout Session on the sandbox over HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from django.utils import timezone

from campaigns.models import Account, PaymentLink, PromiseToPay
from campaigns.payments import links
from integrations import clock
from integrations.sandbox.models import SimulatedCheckoutSession, SimulatorConfig
from tests.campaigns.payment_factories import account, path_of, stripe_sandbox  # noqa: F401 (fixture)
from tests.campaigns.sms_factories import shipped_cadences  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def open_link(live_server, link: str) -> requests.Response:
    return requests.get(live_server.url + path_of(link), allow_redirects=False, timeout=20)


def test_it_makes_a_session_of_the_balance_and_redirects_to_it(stripe_sandbox):
    acct = account("C-100", amount_due="120.50", email="jordan@example.com")
    link = links.secure_link(acct, "balance", "call_abc")
    assert "/pay/" in link and link.endswith("/")

    response = open_link(stripe_sandbox, link)

    assert response.status_code == 302, response.text
    session = SimulatedCheckoutSession.objects.get()
    assert response.headers["Location"].endswith("/sandbox/stripe/checkout/" + session.session_id)
    assert session.amount_total == 12050 and session.client_reference_id == "C-100"
    assert session.metadata == {"client_id": "C-100", "purpose": "balance", "call_id": "call_abc"}
    assert dt.timedelta(hours=23) < session.expires_at - timezone.now() <= dt.timedelta(hours=24)
    record = PaymentLink.objects.get()
    assert (record.session_id, record.opens, record.call_id, record.amount) == (session.session_id, 1, "call_abc", acct.amount_due)


def test_a_live_session_is_reused_and_every_open_counted(stripe_sandbox):
    acct = account()
    link = links.secure_link(acct)
    first = open_link(stripe_sandbox, link).headers["Location"]
    second = open_link(stripe_sandbox, link).headers["Location"]
    assert first == second
    assert SimulatedCheckoutSession.objects.count() == 1
    assert PaymentLink.objects.get().opens == 2


def test_an_expired_session_is_replaced(stripe_sandbox):
    acct = account()
    link = links.secure_link(acct)
    first = open_link(stripe_sandbox, link).headers["Location"]
    past = timezone.now() - dt.timedelta(minutes=1)
    PaymentLink.objects.update(expires_at=past)
    SimulatedCheckoutSession.objects.update(expires_at=past)

    second = open_link(stripe_sandbox, link).headers["Location"]

    assert second != first
    assert list(PaymentLink.objects.order_by("created_at").values_list("status", flat=True)) == ["expired", "open"]
    assert SimulatedCheckoutSession.objects.count() == 2


def test_a_promise_link_asks_for_the_promised_amount(stripe_sandbox):
    acct = account(amount_due="300.00")
    promise = PromiseToPay.objects.create(client_id=acct.client_id, amount="75.00", promised_date=dt.date.today() + dt.timedelta(days=3), call_id="call_p")
    open_link(stripe_sandbox, links.secure_link(acct, "promise"))
    session = SimulatedCheckoutSession.objects.get()
    assert session.amount_total == 7500 and session.metadata["promise_id"] == str(promise.pk)


def test_a_forged_or_expired_token_gets_a_clear_page(stripe_sandbox, settings):
    acct = account()
    link = links.secure_link(acct)
    forged = open_link(stripe_sandbox, link[:-3] + "x/")
    assert forged.status_code == 404 and "not valid" in forged.text

    old = links.secure_link_for(client_id=acct.client_id, now=clock.now() - dt.timedelta(days=settings.PAYMENT_LINK_MAX_AGE_DAYS + 1))
    expired = open_link(stripe_sandbox, old)
    assert expired.status_code == 410 and "expired" in expired.text
    assert not SimulatedCheckoutSession.objects.exists() and not PaymentLink.objects.exists()


def test_stripe_down_gives_a_retry_page_and_the_next_open_makes_one_session(stripe_sandbox):
    acct = account()
    link = links.secure_link(acct)
    config = SimulatorConfig.load()
    config.stripe_error_rate = 1.0
    config.save()

    down = open_link(stripe_sandbox, link)

    assert down.status_code == 503 and "try again" in down.text and down.headers["Retry-After"]
    assert not PaymentLink.objects.exists()
    config.stripe_error_rate = 0
    config.save()
    again = open_link(stripe_sandbox, link)
    assert again.status_code == 302
    assert SimulatedCheckoutSession.objects.count() == 1 and PaymentLink.objects.get().opens == 1


def test_stripe_slow_gives_the_retry_page_in_seconds(stripe_sandbox, monkeypatch):
    from integrations.stripe import client as stripe_client

    monkeypatch.setattr(stripe_client, "TIMEOUT", (1.0, 0.5))
    monkeypatch.setattr(stripe_client, "MAX_NETWORK_RETRIES", 0)
    stripe_client._local.__dict__.clear()
    config = SimulatorConfig.load()
    config.stripe_latency_seconds = 2.0
    config.save()
    response = open_link(stripe_sandbox, links.secure_link(account()))
    assert response.status_code == 503


def test_nothing_due_says_so(stripe_sandbox):
    acct = account(amount_due="0")
    response = open_link(stripe_sandbox, links.secure_link(acct))
    assert response.status_code == 200 and "Nothing to pay" in response.text


def test_an_account_without_an_amount_on_record_is_not_told_it_owes_nothing(stripe_sandbox):
    acct = account("C-NOAMOUNT")
    Account.objects.filter(pk=acct.pk).update(amount_due=None)
    page = open_link(stripe_sandbox, links.secure_link(acct))
    assert page.status_code == 200 and "show your balance online" in page.text and "no balance due" not in page.text
    assert not PaymentLink.objects.exists()
