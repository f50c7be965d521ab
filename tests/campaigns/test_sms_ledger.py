"""Every text enters the contact ledger, and texts never count toward the 7 calls in 7 days."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from campaigns.models import ContactLedgerEntry
from campaigns.compliance import gate as compliance
from campaigns.compliance import ledger
from tests.campaigns.sms_factories import CAMPAIGN_DATE, queue_item, running_campaign

pytestmark = pytest.mark.django_db

NOON = dt.datetime.combine(CAMPAIGN_DATE, dt.time(12, 0), tzinfo=ZoneInfo("America/New_York"))


def _history(item, kind: str, count: int) -> None:
    for n in range(count):
        ledger.ledger_record(
            client_id=item.client_id,
            phone=item.phone,
            kind=kind,
            reference=f"{kind}-{item.client_id}-{n}",
            occurred_at=NOON - dt.timedelta(days=6, hours=n),
        )


def test_texts_in_the_ledger_do_not_block_a_call():
    campaign = running_campaign()
    item = queue_item(campaign, action_type="CALL")
    _history(item, ContactLedgerEntry.Kind.SMS, 12)
    assert compliance.gate_calls(campaign=campaign, items=[item], now=NOON) == {item.pk: None}


def test_while_seven_call_attempts_do():
    campaign = running_campaign()
    item = queue_item(campaign, action_type="CALL")
    _history(item, ContactLedgerEntry.Kind.CALL_ATTEMPT, 7)
    block = compliance.gate_calls(campaign=campaign, items=[item], now=NOON)[item.pk]
    assert block is not None and block.rule == compliance.Rule.WEEKLY_CALL_CAP
