"""SMS-only touchpoints get a uniformly random send time inside the local SMS window."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from cadences.models import DialerSettings
from campaigns.models import Campaign, GateDecision, QueueItem
from campaigns.sms import outbound as sms
from tests.campaigns.sms_factories import queue_item, running_campaign

pytestmark = pytest.mark.django_db

US_ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
]


def _local(item: QueueItem, zone: str) -> dt.datetime:
    assert item.sms_due_at is not None
    return item.sms_due_at.astimezone(ZoneInfo(zone))


def _before_dawn(day: dt.date) -> dt.datetime:
    # 05:00 UTC: before 10:00 local anywhere in the US, so the whole window is ahead.
    return dt.datetime.combine(day, dt.time(5, 0), tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("zone", US_ZONES)
def test_send_times_fall_inside_the_window_in_each_zone(zone):
    campaign = running_campaign()
    items = [queue_item(campaign, timezones=zone) for _ in range(40)]
    report = sms.sms_schedule(campaign=campaign, now=_before_dawn(campaign.date), rng=random.Random(7))
    assert report.scheduled == 40 and report.skipped == 0
    for item in QueueItem.objects.filter(pk__in=[i.pk for i in items]):
        local = _local(item, zone)
        assert local.date() == campaign.date
        assert dt.time(10, 0) <= local.time() < dt.time(13, 0), local
        assert item.status == QueueItem.Status.SMS_SCHEDULED
        assert item.sms_status == QueueItem.SmsStatus.SCHEDULED


def test_the_draw_is_uniform_over_the_window():
    campaign = running_campaign()
    items = [queue_item(campaign) for _ in range(600)]
    sms.sms_schedule(campaign=campaign, now=_before_dawn(campaign.date), rng=random.Random(2024))
    hours = Counter(_local(i, "America/New_York").hour for i in QueueItem.objects.filter(pk__in=[i.pk for i in items]))
    assert set(hours) == {10, 11, 12}
    # 200 expected per hour; a fixed seed keeps this deterministic, the bound is ~4.5 sigma.
    assert all(140 <= n <= 260 for n in hours.values()), hours
    minutes = {_local(i, "America/New_York").minute for i in QueueItem.objects.filter(pk__in=[i.pk for i in items])}
    assert len(minutes) > 50  # spread over the hour, not bunched on a few instants


def test_the_same_seed_gives_the_same_times():
    def schedule(day: dt.date) -> list[dt.datetime]:
        campaign = running_campaign(date=day)
        items = [queue_item(campaign, timezones=zone) for zone in US_ZONES]
        sms.sms_schedule(campaign=campaign, now=_before_dawn(day), rng=random.Random(99))
        return [
            _local(i, z).replace(year=2000, month=1, day=1)
            for i, z in zip(QueueItem.objects.filter(pk__in=[i.pk for i in items]).order_by("pk"), US_ZONES)
        ]

    first = schedule(dt.date(2025, 6, 10))
    second = schedule(dt.date(2025, 6, 11))
    assert [t.time() for t in first] == [t.time() for t in second]


@pytest.mark.parametrize("day", [dt.date(2025, 3, 9), dt.date(2025, 11, 2)], ids=["spring-forward", "fall-back"])
@pytest.mark.parametrize("zone", ["America/New_York", "America/Los_Angeles", "America/Phoenix"])
def test_dst_change_days(day, zone):
    campaign = running_campaign(date=day)
    items = [queue_item(campaign, timezones=zone) for _ in range(50)]
    sms.sms_schedule(campaign=campaign, now=_before_dawn(day), rng=random.Random(3))
    for item in QueueItem.objects.filter(pk__in=[i.pk for i in items]):
        local = _local(item, zone)
        assert local.date() == day
        assert dt.time(10, 0) <= local.time() < dt.time(13, 0), local
    # The window is three real hours long on the change day too.
    opens, closes = sms._window_bounds(day=day, zones=[ZoneInfo(zone)], start=dt.time(10), end=dt.time(13))
    assert closes - opens == dt.timedelta(hours=3)


def test_an_ambiguous_location_gets_a_time_inside_every_zones_window():
    campaign = running_campaign()
    zones = ["America/New_York", "America/Chicago"]
    items = [queue_item(campaign, timezones=",".join(zones)) for _ in range(100)]
    sms.sms_schedule(campaign=campaign, now=_before_dawn(campaign.date), rng=random.Random(11))
    for item in QueueItem.objects.filter(pk__in=[i.pk for i in items]):
        for zone in zones:
            assert dt.time(10, 0) <= _local(item, zone).time() < dt.time(13, 0)
    # New York 11:00–13:00 is the only shared part (Chicago is an hour behind).
    earliest = min(_local(i, "America/New_York") for i in QueueItem.objects.filter(pk__in=[i.pk for i in items]))
    assert earliest.time() >= dt.time(11, 0)


def test_zones_whose_windows_never_overlap_are_skipped_with_the_reason():
    campaign = running_campaign()
    item = queue_item(campaign, timezones="America/New_York,Pacific/Honolulu")
    report = sms.sms_schedule(campaign=campaign, now=_before_dawn(campaign.date), rng=random.Random(1))
    item.refresh_from_db()
    assert report.skipped == 1
    assert item.status == QueueItem.Status.SKIPPED
    assert item.sms_status == QueueItem.SmsStatus.SKIPPED
    assert item.skip_reason == sms.RULE_NO_OVERLAP
    assert item.sms_due_at is None
    decision = GateDecision.objects.get(queue_item=item)
    assert decision.rule == sms.RULE_NO_OVERLAP and decision.channel == "sms"
    assert "Pacific/Honolulu" in decision.detail
    campaign.refresh_from_db()
    assert campaign.skipped == 1


def test_an_unknown_time_zone_is_never_guessed():
    campaign = running_campaign()
    item = queue_item(campaign, timezones="Mars/Olympus_Mons")
    sms.sms_schedule(campaign=campaign, now=_before_dawn(campaign.date), rng=random.Random(1))
    item.refresh_from_db()
    assert item.status == QueueItem.Status.SKIPPED and item.skip_reason == "unknown_timezone"


def test_a_window_already_closed_today_skips_the_touchpoint():
    campaign = running_campaign()
    item = queue_item(campaign)
    now = dt.datetime.combine(campaign.date, dt.time(13, 0), tzinfo=ZoneInfo("America/New_York"))
    sms.sms_schedule(campaign=campaign, now=now, rng=random.Random(1))
    item.refresh_from_db()
    assert item.status == QueueItem.Status.SKIPPED and item.skip_reason == sms.RULE_WINDOW_PASSED


def test_scheduling_mid_window_never_picks_a_time_in_the_past():
    campaign = running_campaign()
    items = [queue_item(campaign) for _ in range(50)]
    now = dt.datetime.combine(campaign.date, dt.time(12, 30), tzinfo=ZoneInfo("America/New_York"))
    sms.sms_schedule(campaign=campaign, now=now, rng=random.Random(5))
    for item in QueueItem.objects.filter(pk__in=[i.pk for i in items]):
        assert now <= item.sms_due_at < now + dt.timedelta(minutes=30)


def test_the_window_is_the_setting():
    dialer = DialerSettings.load()
    dialer.sms_window_start, dialer.sms_window_end = dt.time(14, 0), dt.time(15, 30)
    dialer.save()
    campaign = running_campaign()
    items = [queue_item(campaign, timezones="America/Denver") for _ in range(30)]
    sms.sms_schedule(campaign=campaign, now=_before_dawn(campaign.date), rng=random.Random(8))
    for item in QueueItem.objects.filter(pk__in=[i.pk for i in items]):
        assert dt.time(14, 0) <= _local(item, "America/Denver").time() < dt.time(15, 30)


def test_a_window_setting_wider_than_the_law_is_narrowed_to_it():
    dialer = DialerSettings.load()
    dialer.sms_window_start, dialer.sms_window_end = dt.time(6, 0), dt.time(8, 30)
    dialer.save()
    campaign = running_campaign()
    items = [queue_item(campaign) for _ in range(30)]
    sms.sms_schedule(campaign=campaign, now=_before_dawn(campaign.date), rng=random.Random(8))
    for item in QueueItem.objects.filter(pk__in=[i.pk for i in items]):
        assert dt.time(8, 0) <= _local(item, "America/New_York").time() < dt.time(8, 30)


def test_scheduling_again_changes_nothing_and_only_touches_sms_only_items():
    campaign = running_campaign()
    sms_item = queue_item(campaign)
    both_item = queue_item(campaign, action_type="BOTH")
    now = _before_dawn(campaign.date)
    sms.sms_schedule(campaign=campaign, now=now, rng=random.Random(1))
    sms_item.refresh_from_db()
    due = sms_item.sms_due_at
    report = sms.sms_schedule(campaign=campaign, now=now, rng=random.Random(2))
    sms_item.refresh_from_db()
    both_item.refresh_from_db()
    assert report.scheduled == 0 and sms_item.sms_due_at == due
    assert both_item.sms_due_at is None and both_item.sms_status == QueueItem.SmsStatus.PENDING


def test_items_of_other_campaigns_are_untouched():
    campaign = running_campaign()
    other = running_campaign(date=campaign.date + dt.timedelta(days=1), status=Campaign.Status.DRAFT)
    mine, theirs = queue_item(campaign), queue_item(other)
    sms.sms_schedule(campaign=campaign, now=_before_dawn(campaign.date), rng=random.Random(1))
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.sms_due_at is not None and theirs.sms_due_at is None
