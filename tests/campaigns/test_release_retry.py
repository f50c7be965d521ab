"""The retry curve: a no-answer returns to the queue after the delay, a bounded number of times."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from campaigns.models import Campaign, QueueItem
from campaigns.compliance.gate import Rule
from campaigns.calls.release import batch_claim
from campaigns.calls.retry import queue_item_schedule_retry
from campaigns.transitions import campaign_recount, queue_item_transition

from .release_factories import dialer_settings, make_call_step, make_campaign, make_item, make_segment, reload

pytestmark = pytest.mark.django_db

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2025, 6, 10, 11, 0, tzinfo=NY)
S = QueueItem.Status


@pytest.fixture
def step():
    return make_call_step(make_segment())


@pytest.fixture
def campaign():
    dialer_settings(retry_delay_minutes=120, max_call_attempts_per_day=2)
    return make_campaign(date=NOW.date())


def called(item, outcome, attempts=1):
    """Walk the item through a call the way release and webhooks do."""
    queue_item_transition(item_id=item.pk, from_statuses=[S.QUEUED], to_status=S.RELEASING)
    queue_item_transition(item_id=item.pk, from_statuses=[S.RELEASING], to_status=S.DIALING, call_attempts=attempts)
    queue_item_transition(item_id=item.pk, from_statuses=[S.DIALING], to_status=outcome)
    item.refresh_from_db()
    return item


def test_no_answer_returns_to_the_queue_after_the_delay(campaign, step):
    item = called(make_item(campaign, step), S.NO_ANSWER)
    assert queue_item_schedule_retry(item=item, now=NOW)
    item.refresh_from_db()
    assert item.status == S.QUEUED and item.next_attempt_at == NOW + dt.timedelta(hours=2)
    campaign.refresh_from_db()
    assert campaign.no_answer == 0 == campaign_recount(campaign=campaign)["no_answer"]


def test_the_retry_is_not_due_before_its_time_and_goes_through_the_gate(campaign, step):
    item = called(make_item(campaign, step), S.NO_ANSWER)
    queue_item_schedule_retry(item=item, now=NOW)
    assert batch_claim(campaign=campaign, ring_group="billing", limit=5, available_agents=1, now=NOW + dt.timedelta(minutes=119)).batch is None
    again = batch_claim(campaign=campaign, ring_group="billing", limit=5, available_agents=1, now=NOW + dt.timedelta(hours=2))
    assert [a.queue_item_id for a in again.attempts] == [item.pk]
    assert again.attempts[0].attempt_number == 2


def test_no_more_than_the_daily_attempts(campaign, step):
    item = called(make_item(campaign, step), S.NO_ANSWER, attempts=2)
    assert not queue_item_schedule_retry(item=item, now=NOW)
    assert reload([item])[0].status == S.NO_ANSWER


def test_the_gate_still_stops_a_retry_beyond_the_daily_cap(campaign, step):
    # A retry that was scheduled before the limit was lowered is skipped by the gate.
    item = called(make_item(campaign, step), S.NO_ANSWER)
    queue_item_schedule_retry(item=item, now=NOW)
    dialer_settings(max_call_attempts_per_day=1)
    result = batch_claim(campaign=campaign, ring_group="billing", limit=5, available_agents=1, now=NOW + dt.timedelta(hours=2))
    assert result.attempts == [] and result.skipped == 1
    assert reload([item])[0].skip_reason == Rule.DAILY_ATTEMPT_CAP


@pytest.mark.parametrize("outcome", [S.VOICEMAIL, S.ANSWERED, S.TRANSFERRED, S.FAILED])
def test_other_outcomes_are_not_retried(campaign, step, outcome):
    item = called(make_item(campaign, step), outcome)
    assert not queue_item_schedule_retry(item=item, now=NOW)
    assert reload([item])[0].status == outcome


def test_a_configured_delay_is_used(campaign, step):
    dialer_settings(retry_delay_minutes=45)
    item = called(make_item(campaign, step), S.NO_ANSWER)
    assert queue_item_schedule_retry(item=item, now=NOW)
    assert reload([item])[0].next_attempt_at == NOW + dt.timedelta(minutes=45)


def test_no_retry_when_the_window_is_closed_for_the_rest_of_the_day(campaign, step):
    item = called(make_item(campaign, step), S.NO_ANSWER)
    assert not queue_item_schedule_retry(item=item, now=NOW.replace(hour=19, minute=30))  # 21:30 is too late
    assert reload([item])[0].status == S.NO_ANSWER


def test_a_retry_landing_before_the_window_waits_for_it(step):
    # A Los Angeles client called at 08:05 local, retry delay 1 min but a 09:00 campaign window start.
    dialer_settings(retry_delay_minutes=1, max_call_attempts_per_day=2)
    campaign = make_campaign(date=NOW.date(), calling_window_start=dt.time(9))
    item = called(make_item(campaign, step, timezones="America/Los_Angeles"), S.NO_ANSWER)
    la_now = dt.datetime(2025, 6, 10, 8, 5, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert queue_item_schedule_retry(item=item, now=la_now)
    assert reload([item])[0].next_attempt_at == la_now.replace(hour=9, minute=0)


def test_no_retry_once_the_campaign_stopped(campaign, step):
    item = called(make_item(campaign, step), S.NO_ANSWER)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPING)
    assert not queue_item_schedule_retry(item=item, now=NOW)
