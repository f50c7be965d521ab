"""The day's invariant checks (run_campaign's summary, the end-to-end test) catch what they name."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.lifecycle import invariants
from campaigns.compliance.ledger import ledger_record
from tests.campaigns.dashboard_factories import make_campaign, make_item, make_segment, make_step

pytestmark = pytest.mark.django_db

DAY = dt.date(2025, 6, 10)
NOON = dt.datetime(2025, 6, 10, 16, 0, tzinfo=dt.timezone.utc)  # 12:00 in New York


@pytest.fixture
def item():
    campaign = make_campaign(date=DAY)
    return make_item(campaign, make_step(make_segment()), state="NY", timezones="America/New_York")


def _attempt(item, at: dt.datetime, ref: str) -> None:
    ledger_record(client_id=item.client_id, phone=item.phone, kind="call_attempt", reference=ref, occurred_at=at)


def test_a_lawful_week_passes(item) -> None:
    for n in range(7):  # seven attempts in seven days: the cap, not over it
        _attempt(item, NOON - dt.timedelta(days=n, hours=1), f"call_{n}")
    # A conversation before these calls began is past its blackout; the call that produced one is not a breach.
    ledger_record(client_id=item.client_id, phone=item.phone, kind="conversation", reference="call_old", occurred_at=NOON - dt.timedelta(days=14))
    ledger_record(client_id=item.client_id, phone=item.phone, kind="conversation", reference="call_0", occurred_at=NOON - dt.timedelta(minutes=58))
    check = invariants.check_ledger_caps(campaign=item.campaign)
    assert check.ok, check


def test_an_eighth_attempt_in_seven_days_is_caught(item) -> None:
    for n in range(8):
        _attempt(item, NOON - dt.timedelta(days=n % 6, hours=n), f"call_{n}")
    check = invariants.check_ledger_caps(campaign=item.campaign)
    assert not check.ok and check.examples[0]["attempts_in_7_days"] == 8


def test_a_call_inside_a_conversations_blackout_is_caught(item) -> None:
    ledger_record(client_id=item.client_id, phone=item.phone, kind="conversation", reference="call_talk", occurred_at=NOON - dt.timedelta(days=6))
    _attempt(item, NOON - dt.timedelta(days=6, minutes=5), "call_talk")  # the call that was the conversation
    _attempt(item, NOON, "call_again")
    check = invariants.check_ledger_caps(campaign=item.campaign)
    assert not check.ok and "1 calls inside a conversation's blackout" in check.detail
    assert check.examples[0]["call_at"] == NOON.isoformat()


def test_a_call_the_day_after_an_inbound_call_is_caught(item) -> None:
    ledger_record(client_id=item.client_id, phone=item.phone, kind="inbound_call", reference="call_in", occurred_at=NOON - dt.timedelta(days=1))
    _attempt(item, NOON, "call_out")
    assert not invariants.check_ledger_caps(campaign=item.campaign).ok
