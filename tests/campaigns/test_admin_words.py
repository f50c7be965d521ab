"""The admin's lists show amounts with their sign, and phases and outcomes in words."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import ContactLedgerEntry, PromiseToPay
from tests.campaigns.dashboard_factories import make_attempt, make_campaign, make_item, make_segment, make_step

pytestmark = pytest.mark.django_db


def test_promises_show_the_amount_with_its_sign_and_the_phase_in_words(admin_client: Client) -> None:
    PromiseToPay.objects.create(
        client_id="C-PROMISE", client_name="Jordan Avery", amount=Decimal("1234.5"), promised_date=dt.date(2026, 1, 9), phase="pre_suspension"
    )
    page = admin_client.get(reverse("admin:campaigns_promisetopay_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "$1,234.50" in html and "Pre-suspension" in html
    assert ">pre_suspension<" not in html and ">1234.50<" not in html
    filtered = admin_client.get(reverse("admin:campaigns_promisetopay_changelist"), {"phase": "pre_suspension"})
    assert [p.client_id for p in filtered.context["cl"].result_list] == ["C-PROMISE"]


def test_ledger_outcomes_read_in_words(admin_client: Client) -> None:
    ContactLedgerEntry.objects.create(
        client_id="C-LEDGER", phone="+16465550123", kind=ContactLedgerEntry.Kind.SMS, occurred_at=timezone.now(),
        reference="qi-1", outcome="sent_with_opt_out_notice",
    )  # fmt: skip
    page = admin_client.get(reverse("admin:campaigns_contactledgerentry_changelist"))
    html = page.content.decode()
    assert "Sent, with the opt-out notice" in html
    assert ">sent_with_opt_out_notice<" not in html


def test_call_attempts_say_why_the_call_ended_in_words(admin_client: Client) -> None:
    step = make_step(make_segment("RED Initial"))
    item = make_item(make_campaign(date=dt.date(2026, 1, 5)), step)
    attempt = make_attempt(item, outcome="answered", disconnection_reason="user_hangup")
    listing = admin_client.get(reverse("admin:campaigns_callattempt_changelist")).content.decode()
    assert "the client hung up" in listing and ">user_hangup<" not in listing
    item_page = admin_client.get(reverse("admin:campaigns_queueitem_change", args=[item.pk])).content.decode()
    assert "the client hung up" in item_page
    assert attempt.disconnection_display == "the client hung up"
