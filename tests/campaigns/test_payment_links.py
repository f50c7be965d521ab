from __future__ import annotations

import datetime as dt

import pytest
from django.core import signing

from cadences import templating
from campaigns.models import PayLinkCode
from campaigns.payments import links
from campaigns.payments.links import (
    PaymentLinkError,
    payment_link_for,
    payment_link_token,
    payment_link_verify,
)

NOW = dt.datetime(2025, 3, 10, 15, 0, tzinfo=dt.timezone.utc)


def test_it_round_trips_the_client_id():
    token = payment_link_token(client_id="C-100:7/ä", now=NOW)
    assert payment_link_verify(token=token, now=NOW + dt.timedelta(days=3)) == "C-100:7/ä"


def test_token_is_url_safe():
    token = payment_link_token(client_id="client with spaces & symbols?", now=NOW)
    assert all(c.isalnum() or c in "-_:" for c in token)


@pytest.mark.parametrize("days, valid", [(29, True), (30, True), (31, False)])
def test_it_expires_after_the_configured_age(settings, days, valid):
    settings.PAYMENT_LINK_MAX_AGE_DAYS = 30
    token = payment_link_token(client_id="C-1", now=NOW)
    later = NOW + dt.timedelta(days=days)
    if valid:
        assert payment_link_verify(token=token, now=later) == "C-1"
    else:
        with pytest.raises(PaymentLinkError) as info:
            payment_link_verify(token=token, now=later)
        assert info.value.expired


def test_a_forged_token_is_refused():
    token = payment_link_token(client_id="C-1", now=NOW)
    payload, ts, sig = token.rsplit(":", 2)
    other = payment_link_token(client_id="C-2", now=NOW)
    forged = f"{other.rsplit(':', 2)[0]}:{ts}:{sig}"
    with pytest.raises(PaymentLinkError) as info:
        payment_link_verify(token=forged, now=NOW)
    assert not info.value.expired


@pytest.mark.parametrize("token", ["", "garbage", "a:b", "a:b:c:d"])
def test_malformed_tokens_are_refused(token):
    with pytest.raises(PaymentLinkError):
        payment_link_verify(token=token, now=NOW)


def test_a_token_signed_for_another_purpose_is_refused():
    # Same SECRET_KEY, different salt: e.g. a value signed by another part of Django.
    token = signing.TimestampSigner(salt="something.else").sign_object({"client_id": "C-1"})
    with pytest.raises(PaymentLinkError):
        payment_link_verify(token=token, now=dt.datetime.now(dt.timezone.utc))


def test_a_token_from_the_future_is_refused():
    token = payment_link_token(client_id="C-1", now=NOW + dt.timedelta(hours=1))
    with pytest.raises(PaymentLinkError):
        payment_link_verify(token=token, now=NOW)


@pytest.mark.django_db
def test_the_link_we_send_is_short(settings):
    # A text has 160 characters; the signed token alone was over 100 of them.
    settings.PAYMENT_LINK_TEMPLATE = "https://billing.example.com/pay/{token}/"
    link = links.secure_link_for(client_id="C-100:7/ä", now=NOW, purpose=links.PROMISE, promise_id=12, call_id="call_" + "f" * 32)
    assert len(link) == len("https://billing.example.com/pay/") + 16 + 1
    code = link.rstrip("/").rsplit("/", 1)[1]
    assert links.payment_link_claim(token=code, now=NOW + dt.timedelta(days=3)) == links.LinkClaim(
        client_id="C-100:7/ä", purpose="promise", promise_id=12, call_id="call_" + "f" * 32
    )
    assert len(links.example_link()) == len(link)


@pytest.mark.django_db
def test_the_admin_preview_link_is_as_long_as_a_real_one(settings):
    settings.PAYMENT_LINK_TEMPLATE = "https://billing.example.com/pay/{token}/"
    sample = templating.sample_context(company_name="Acme", today=NOW.date())["payment_link"]
    assert len(sample) == len(links.secure_link_for(client_id="C-1", now=NOW))


@pytest.mark.django_db
def test_the_same_claim_reuses_its_code_for_a_day_then_gets_a_new_one():
    first = links.payment_link_code(client_id="C-1", now=NOW)
    assert links.payment_link_code(client_id="C-1", now=NOW + dt.timedelta(hours=23)) == first
    assert links.payment_link_code(client_id="C-1", now=NOW, call_id="call_1") != first
    assert links.payment_link_code(client_id="C-2", now=NOW) != first
    later = links.payment_link_code(client_id="C-1", now=NOW + dt.timedelta(days=1, minutes=1))
    assert later != first
    assert PayLinkCode.objects.count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize("days, valid", [(29, True), (30, False)])
def test_a_code_expires_after_the_configured_age(settings, days, valid):
    settings.PAYMENT_LINK_MAX_AGE_DAYS = 30
    code = links.payment_link_code(client_id="C-1", now=NOW)
    later = NOW + dt.timedelta(days=days)
    if valid:
        assert payment_link_verify(token=code, now=later) == "C-1"
    else:
        with pytest.raises(PaymentLinkError) as info:
            payment_link_verify(token=code, now=later)
        assert info.value.expired


@pytest.mark.django_db
def test_a_forged_or_unknown_code_is_refused_and_a_bad_signature_costs_no_lookup(django_assert_num_queries):
    code = links.payment_link_code(client_id="C-1", now=NOW)
    flipped = code[:3] + ("A" if code[3] != "A" else "B") + code[4:]
    with django_assert_num_queries(0), pytest.raises(PaymentLinkError) as info:
        payment_link_verify(token=flipped, now=NOW)
    assert not info.value.expired
    # Well signed but never issued (its row gone): refused too.
    PayLinkCode.objects.all().delete()
    with pytest.raises(PaymentLinkError):
        payment_link_verify(token=code, now=NOW)


@pytest.mark.django_db
def test_even_an_https_warehouse_link_is_replaced_by_ours(settings):
    # Every link sent is ours, so its opens are recorded; /pay/ falls back to the warehouse's
    # link only where no payment provider is set up.
    settings.PAYMENT_LINK_TEMPLATE = "https://pay.example.com/p/{token}"
    link = payment_link_for(client_id="C-1", row_link=" https://billing.example.org/pay/abc ", now=NOW)
    assert link.startswith("https://pay.example.com/p/")
    assert payment_link_verify(token=link.removeprefix("https://pay.example.com/p/"), now=NOW) == "C-1"


@pytest.mark.django_db
@pytest.mark.parametrize("row_link", ["", "http://insecure.example.org/pay", "javascript:alert(1)"])
def test_otherwise_the_link_carries_a_signed_token(settings, row_link):
    settings.PAYMENT_LINK_TEMPLATE = "https://pay.example.com/p/{token}?src=sms"
    link = payment_link_for(client_id="C-42", row_link=row_link, now=NOW)
    assert link.startswith("https://pay.example.com/p/") and link.endswith("?src=sms")
    token = link.removeprefix("https://pay.example.com/p/").removesuffix("?src=sms")
    assert payment_link_verify(token=token, now=NOW) == "C-42"
