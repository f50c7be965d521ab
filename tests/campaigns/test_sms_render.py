"""Texts are rendered at send time from the step's template and the client's data."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from cadences.models import CadenceStep, SmsTemplate
from campaigns.models import ContactLedgerEntry
from campaigns.sms import outbound as sms
from campaigns.payments.links import payment_link_verify
from campaigns.sms import inbound as sms_inbound
from tests.campaigns.sms_factories import queue_item, running_campaign

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 6, 10, 15, 0, tzinfo=dt.timezone.utc)

# Wording that would ask a client to hand over card or bank details by text, whatever the phrasing.
_ASKS_FOR_DETAILS = re.compile(
    r"\b(card\s*(number|no\b|#|details|info)|cvv|cvc|security code|expir\w* date|"
    r"(reply|text|send)\b[^.]{0,40}\b(card|account number|routing)|bank account number|routing number)\b",
    re.IGNORECASE,
)


def _render(item) -> str:
    return sms.sms_render(item=item, now=NOW, company_name="Acme Billing")


def test_every_shipped_template_renders_without_asking_for_card_details():
    campaign = running_campaign()
    steps = CadenceStep.objects.filter(sms_template__isnull=False).select_related("segment", "sms_template")
    assert steps.count() > 100  # five segments' worth of texts
    seen_templates = set()
    for step in steps:
        item = queue_item(campaign, segment=step.segment.name, day=step.day, phone=f"+1646555{step.pk % 10000:04d}")
        text = _render(item)
        seen_templates.add(step.sms_template_id)
        assert not _ASKS_FOR_DETAILS.search(text), (step, text)
        assert not sms.asks_for_card_details(text), (step, text)
        assert "{{" not in text and "{%" not in text and "$$" not in text, text
        assert sms.has_opt_out_wording(text), text
        if "{{ payment_link }}" in step.sms_template.body:
            assert "/pay/" in text
        if "amount_due" in step.sms_template.body:
            assert "$1,234.56" in text
    assert seen_templates == set(SmsTemplate.objects.filter(steps__isnull=False).values_list("pk", flat=True))


def test_the_context_carries_the_clients_data():
    campaign = running_campaign(date=dt.date(2025, 6, 10))
    step = CadenceStep.objects.filter(segment__name="Reso Initial", day__range=(20, 89), sms_template__isnull=False).first()
    item = queue_item(
        campaign, segment="Reso Initial", day=step.day, client_name="  María   José Núñez ", amount_due=Decimal("98765.4")
    )
    context = sms.sms_context(item=item, now=NOW, company_name="Acme Billing")
    assert context["client_name"] == "María José Núñez"
    assert context["first_name"] == "María"
    assert str(context["amount_due"]) == "$98,765.40"
    assert context["days_past_due"] == str(step.day)
    # Reso Initial suspends on day 90 and cancels on day 180, counted from the campaign day.
    suspension = dt.date(2025, 6, 10) + dt.timedelta(days=90 - step.day)
    cancellation = dt.date(2025, 6, 10) + dt.timedelta(days=180 - step.day)
    assert context["suspension_date"] == f"{suspension:%B} {suspension.day}, {suspension.year}"
    assert context["cancellation_date"] == f"{cancellation:%B} {cancellation.day}, {cancellation.year}"
    assert context["company_name"] == "Acme Billing"


def test_dates_read_like_a_person_writes_them():
    assert sms.format_date(dt.date(2025, 7, 4)) == "July 4, 2025"
    assert str(sms.format_amount(Decimal("1234.5"))) == "$1,234.50"
    assert sms.format_amount(None) == ""


def test_the_payment_link_is_always_our_signed_link():
    # A warehouse link is not texted: the client opens ours, which records the open and leads
    # to the payment provider (or, with none set up, to the warehouse link).
    campaign = running_campaign()
    with_link = queue_item(campaign, payment_link="https://billing.example.org/pay/xyz")
    without = queue_item(campaign, payment_link="")
    for item in (with_link, without):
        link = sms.sms_context(item=item, now=NOW, company_name="A")["payment_link"]
        assert "billing.example.org" not in link
        token = link.rstrip("/").rsplit("/", 1)[1]
        assert payment_link_verify(token=token, now=NOW) == item.client_id


def test_opt_out_wording_is_added_only_when_the_template_lacks_it_and_the_number_never_got_it():
    campaign = running_campaign()
    item = queue_item(campaign)
    template = item.step.sms_template
    # Stored directly: a template saved outside the admin's validation (an import, an old row).
    SmsTemplate.objects.filter(pk=template.pk).update(body="Hi {{ first_name }}, pay at {{ payment_link }}")
    item.step.sms_template.refresh_from_db()
    assert _render(item).endswith(sms.OPT_OUT_NOTICE)

    ContactLedgerEntry.objects.create(
        client_id=item.client_id,
        phone=item.phone,
        kind=ContactLedgerEntry.Kind.SMS,
        reference="earlier-text",
        occurred_at=NOW - dt.timedelta(days=30),
        outcome=sms.LEDGER_SENT_WITH_NOTICE,
    )
    assert not _render(item).endswith(sms.OPT_OUT_NOTICE)

    other_number = queue_item(campaign)
    assert _render(other_number).endswith(sms.OPT_OUT_NOTICE)


@pytest.mark.parametrize(
    "body, expected_end",
    [
        ("Hi {{ first_name }}, or reply to set up a plan. {{ company_name }}.", "set up a plan. Reply STOP to opt out."),
        ("Hi {{ first_name }}, or reply to set up a plan.", "set up a plan. Reply STOP to opt out."),
        ("Hi {{ first_name }}, or reply to set up a plan", "set up a plan. Reply STOP to opt out."),
        ("Hi {{ first_name }}, don't reply STOP, we never stop.", "we never stop. Reply STOP to opt out."),
    ],
)
def test_the_added_notice_joins_the_text_with_one_full_stop(body, expected_end):
    campaign = running_campaign()
    item = queue_item(campaign)
    SmsTemplate.objects.filter(pk=item.step.sms_template_id).update(body=body)
    item.step.sms_template.refresh_from_db()
    text = sms.sms_render(item=item, now=NOW, company_name="")
    assert text.endswith(expected_end), text
    assert ". ." not in text and ".." not in text


def test_a_template_with_the_wording_gets_no_second_notice():
    campaign = running_campaign()
    item = queue_item(campaign)
    text = _render(item)
    assert text.count("STOP") == 1


def test_a_template_citing_an_amount_the_warehouse_lacks_is_refused():
    campaign = running_campaign()
    step = CadenceStep.objects.filter(sms_template__body__contains="amount_due", action_type="SMS").first()
    item = queue_item(campaign, segment=step.segment.name, day=step.day, amount_due=None)
    with pytest.raises(sms.RenderError) as info:
        _render(item)
    assert info.value.reason == "missing_amount_due"


def test_a_template_asking_for_card_details_is_refused_at_send_time():
    campaign = running_campaign()
    item = queue_item(campaign)
    SmsTemplate.objects.filter(pk=item.step.sms_template_id).update(
        body="Hi {{ first_name }}, reply with your card number and CVV to pay. Reply STOP to opt out."
    )
    item.step.sms_template.refresh_from_db()
    with pytest.raises(sms.RenderError) as info:
        _render(item)
    assert info.value.reason == "asks_for_card_details"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("STOP", "STOP"),
        ("  stop  ", "STOP"),
        ("Stop.", "STOP"),
        ("opt out", "OPT OUT"),
        ("Opt-Out", "OPT OUT"),
        (" OPT   out ", "OPT OUT"),
        ("stop calling me", "STOP CALLING ME"),
        ("", ""),
    ],
)
def test_keywords_are_compared_whole_and_case_blind(text, expected):
    assert sms_inbound.normalize_keyword(text) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("15105553344", "+15105553344"),
        ("+15105553344", "+15105553344"),
        ("5105553344", "+15105553344"),
        ("(510) 555-3344", "+15105553344"),
        (15105553344, "+15105553344"),
        ("", ""),
        (None, ""),
        ("abc", ""),
    ],
)
def test_heymarket_numbers_become_e164(raw, expected):
    assert sms_inbound.phone_e164(raw) == expected


def test_the_local_id_is_the_same_for_the_same_touchpoint():
    campaign = running_campaign()
    item = queue_item(campaign, client_id="C-77")
    assert sms.sms_local_id(item=item, kind="touchpoint") == "qi-20250610-C-77-touchpoint"
    assert sms.sms_local_id(item=item, kind="follow_up") != sms.sms_local_id(item=item, kind="touchpoint")


@pytest.mark.parametrize(
    "text, asks",
    [
        ("Text us your card # to pay", True),
        ("Reply with your card number", True),
        ("Reply with card no. and expiry date", True),
        ("What is the CVV on the back?", True),
        ("Send your bank account number and routing number", True),
        ("Pay by card securely at https://pay.example.com/p/abc", False),
        ("Pay with a credit card at the link. Reply STOP to opt out.", False),
        ("https://pay.example.com/p/eyJjbGllbnQi-cvcx:1uP0SG:zdF35", False),
    ],
)
def test_the_send_time_guard_spots_requests_for_card_details_only(text, asks):
    assert sms.asks_for_card_details(text) is asks
