"""The daily start: each business day's campaign created and started at the set time, once."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest

from cadences.models import DialerSettings
from campaigns.dashboard import selectors
from campaigns.lifecycle import campaign as lifecycle
from campaigns.models import Alert, Campaign

from .conftest import SampleWarehouse, client_row
from .conftest import unreachable_warehouse as _unreachable_warehouse

pytestmark = pytest.mark.django_db

ZONE = zoneinfo.ZoneInfo("America/New_York")  # the portal's TIME_ZONE in the tests is set below


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZONE)


@pytest.fixture(autouse=True)
def portal_zone(settings: Any) -> None:
    settings.TIME_ZONE = "America/New_York"


def daily_start(**fields: Any) -> DialerSettings:
    dialer = DialerSettings.load()
    for name, value in {"auto_start": True, "auto_start_at": dt.time(7, 30), "holiday_calendar": "US", **fields}.items():
        setattr(dialer, name, value)
    dialer.save()
    return dialer


MONDAY = dt.date(2026, 12, 7)


def test_it_starts_the_day_at_the_set_time_once(sample_warehouse: SampleWarehouse, django_capture_on_commit_callbacks: Any) -> None:
    sample_warehouse.add([client_row(days_past_due=1)])
    daily_start()
    assert lifecycle.campaign_autostart(now=at(MONDAY, 7, 29)) is None and not Campaign.objects.exists()
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        started = lifecycle.campaign_autostart(now=at(MONDAY, 7, 30))
    campaign = Campaign.objects.get()
    assert started == campaign.pk and campaign.date == MONDAY
    assert (campaign.status, campaign.auto_started) == (Campaign.Status.LOADING, True)
    assert len(enqueued) == 1  # the queue load
    # The next minutes, and a second worker, start nothing more.
    assert lifecycle.campaign_autostart(now=at(MONDAY, 7, 31)) is None
    assert lifecycle.campaigns_tick(now=at(MONDAY, 7, 32))["autostarted"] == []
    assert Campaign.objects.count() == 1


@pytest.mark.parametrize(
    "day, fields, why",
    [
        (dt.date(2026, 12, 5), {}, "Saturday is not a business day"),
        (dt.date(2026, 12, 25), {}, "public holiday (Christmas Day)"),
        (dt.date(2027, 4, 19), {"holiday_calendar": "US-MA"}, "Patriots' Day"),
        (dt.date(2026, 12, 24), {"closed_dates": "2026-12-24"}, "listed as a closed day"),
        (dt.date(2026, 12, 5), {"business_days": "0,1,2,3,4,5"}, ""),
    ],
)
def test_it_skips_what_is_not_a_business_day(day: dt.date, fields: dict[str, Any], why: str) -> None:
    dialer = daily_start(**fields)
    assert (why in dialer.not_a_business_day(day)) if why else dialer.not_a_business_day(day) == ""
    started = lifecycle.campaign_autostart(now=at(day, 9))
    assert (started is None) == bool(why)


def test_a_day_with_a_campaign_already_is_left_alone_and_so_is_a_day_it_is_off_for() -> None:
    Campaign.objects.create(date=MONDAY, status=Campaign.Status.FLUSHED)
    daily_start()
    assert lifecycle.campaign_autostart(now=at(MONDAY, 8)) is None
    assert Campaign.objects.get().status == Campaign.Status.FLUSHED
    daily_start(auto_start=False)
    assert lifecycle.campaign_autostart(now=at(MONDAY + dt.timedelta(days=1), 8)) is None
    # After the end of day nothing starts either.
    daily_start()
    assert lifecycle.campaign_autostart(now=at(MONDAY + dt.timedelta(days=1), 21, 45)) is None
    assert Campaign.objects.count() == 1


def test_a_start_whose_load_fails_raises_an_alert_and_is_tried_again(
    sample_warehouse: SampleWarehouse, settings: Any, tmp_path: Any, django_capture_on_commit_callbacks: Any
) -> None:
    sample_warehouse.add([client_row(days_past_due=1)])
    good = settings.WAREHOUSE_URL
    settings.WAREHOUSE_URL = _unreachable_warehouse(tmp_path)
    daily_start()
    with django_capture_on_commit_callbacks(execute=False):
        lifecycle.campaign_autostart(now=at(MONDAY, 7, 30))
    campaign = Campaign.objects.get()
    lifecycle.campaign_load_and_run(campaign=campaign, now=at(MONDAY, 7, 30))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT and campaign.load_error
    assert Alert.objects.filter(campaign=campaign, source="warehouse").exists()
    # Not again at once...
    Campaign.objects.filter(pk=campaign.pk).update(load_started_at=at(MONDAY, 7, 30))
    assert lifecycle.campaign_autostart(now=at(MONDAY, 7, 35)) is None
    # ...but ten minutes on, with the warehouse back, it starts.
    settings.WAREHOUSE_URL = good
    with django_capture_on_commit_callbacks(execute=False):
        assert lifecycle.campaign_autostart(now=at(MONDAY, 7, 41)) == campaign.pk
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.LOADING
    lifecycle.campaign_load_and_run(campaign=campaign, now=at(MONDAY, 7, 41))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING


def test_an_unreadable_calendar_raises_an_alert_instead_of_guessing() -> None:
    daily_start()
    # Stored before a library update dropped the calendar, say: the settings page would refuse it now.
    DialerSettings.objects.update(holiday_calendar="ZZ-9")
    assert lifecycle.campaign_autostart(now=at(MONDAY, 7, 30)) is None and not Campaign.objects.exists()
    alert = Alert.objects.get(source="daily_start")
    assert "not started" in alert.message and "ZZ-9" in alert.message


def test_the_dashboard_says_what_the_daily_start_will_do(client: Any, django_user_model: Any, settings: Any) -> None:
    daily_start()
    assert selectors.daily_start_note(MONDAY) == "The daily start creates and starts it at 07:30."
    assert selectors.daily_start_note(dt.date(2026, 12, 25)) == "The daily start does not run today: December 25 is a public holiday (Christmas Day)."
    user = django_user_model.objects.create_superuser("sup", "sup@example.com", "a-long-test-password")
    client.force_login(user)
    page = client.get("/dashboard/").content.decode()
    assert "The daily start" in page
