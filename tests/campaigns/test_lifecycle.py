"""A campaign's day: start, load, pause/resume, stop (with calls in flight), end-of-day stop."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from campaigns.models import Alert, CallAttempt, Campaign, QueueItem
from campaigns.lifecycle import campaign as lifecycle
from campaigns.lifecycle.campaign import CampaignStateError

from .conftest import unreachable_warehouse as _unreachable_warehouse
from .conftest import CAMPAIGN_DATE, NOW, SampleWarehouse, client_row

pytestmark = pytest.mark.django_db

S = Campaign.Status


def _started(campaign: Campaign, django_capture_on_commit_callbacks: Any) -> Campaign:
    with django_capture_on_commit_callbacks() as callbacks:
        lifecycle.campaign_start(campaign=campaign)
    assert [c.__qualname__ for c in callbacks], "starting must enqueue the load"
    return campaign


def test_start_loads_then_runs_with_revalidation_and_release(
    campaign: Campaign, sample_warehouse: SampleWarehouse, django_capture_on_commit_callbacks: Any
) -> None:
    sample_warehouse.add([client_row(days_past_due=1), client_row(days_past_due=60)])
    _started(campaign, django_capture_on_commit_callbacks)
    assert campaign.status == S.LOADING

    with django_capture_on_commit_callbacks() as callbacks:
        lifecycle.campaign_load_and_run(campaign=campaign, now=NOW)
    campaign.refresh_from_db()
    assert campaign.status == S.RUNNING
    assert campaign.rows_inserted == 2 and campaign.items.count() == 2
    assert Schedule.objects.filter(name=f"revalidate-campaign-{campaign.pk}").exists()
    assert len(callbacks) == 1, "the release loop is enqueued once the load commits"


def test_only_a_draft_starts(campaign: Campaign, sample_warehouse: SampleWarehouse, django_capture_on_commit_callbacks: Any) -> None:
    _started(campaign, django_capture_on_commit_callbacks)
    with pytest.raises(CampaignStateError, match="only a draft"):
        lifecycle.campaign_start(campaign=campaign)


def test_a_warehouse_failure_during_load_shows_the_error_and_a_retry_completes(
    campaign: Campaign, sample_warehouse: SampleWarehouse, settings: Any, tmp_path: Any, django_capture_on_commit_callbacks: Any
) -> None:
    sample_warehouse.add([client_row(), client_row()])
    good_url = settings.WAREHOUSE_URL
    settings.WAREHOUSE_URL = _unreachable_warehouse(tmp_path)
    _started(campaign, django_capture_on_commit_callbacks)
    lifecycle.campaign_load_and_run(campaign=campaign, now=NOW)
    campaign.refresh_from_db()
    assert campaign.status == S.DRAFT
    assert campaign.load_error
    assert Alert.objects.filter(campaign=campaign, source="warehouse", level="error").exists()

    settings.WAREHOUSE_URL = good_url
    _started(campaign, django_capture_on_commit_callbacks)
    lifecycle.campaign_load_and_run(campaign=campaign, now=NOW)
    campaign.refresh_from_db()
    assert campaign.status == S.RUNNING and campaign.load_error == ""
    assert campaign.items.count() == 2


def test_pause_and_resume(campaign: Campaign, django_capture_on_commit_callbacks: Any) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(status=S.RUNNING)
    campaign.refresh_from_db()
    lifecycle.campaign_pause(campaign=campaign, reason="agents in a meeting")
    assert campaign.status == S.PAUSED and campaign.halt_reason == "agents in a meeting"
    with pytest.raises(CampaignStateError):
        lifecycle.campaign_pause(campaign=campaign)
    with django_capture_on_commit_callbacks() as callbacks:
        lifecycle.campaign_resume(campaign=campaign)
    assert campaign.status == S.RUNNING and campaign.halt_reason == ""
    assert len(callbacks) == 1, "resuming restarts the release loop"
    with pytest.raises(CampaignStateError):
        lifecycle.campaign_resume(campaign=campaign)


def _loaded(campaign: Campaign, sample_warehouse: SampleWarehouse, rows: list[dict[str, Any]]) -> list[QueueItem]:
    sample_warehouse.add(rows)
    Campaign.objects.filter(pk=campaign.pk).update(status=S.LOADING)
    campaign.refresh_from_db()
    lifecycle.campaign_load_and_run(campaign=campaign, now=NOW)
    campaign.refresh_from_db()
    return list(campaign.items.order_by("client_id"))


def test_stop_waits_for_calls_in_flight_then_closes_untouched_items_with_a_reason(
    campaign: Campaign, sample_warehouse: SampleWarehouse
) -> None:
    # Day 3 of RED Initial is a call touchpoint in the default cadence.
    dialing, waiting = _loaded(campaign, sample_warehouse, [client_row(days_past_due=3), client_row(days_past_due=3)])
    QueueItem.objects.filter(pk=dialing.pk).update(status=QueueItem.Status.DIALING)

    lifecycle.campaign_stop(campaign=campaign)
    assert campaign.status == S.STOPPING
    assert not Schedule.objects.filter(name=f"revalidate-campaign-{campaign.pk}").exists()

    stopped_at = campaign.stopped_at
    assert lifecycle.campaign_finish(campaign=campaign, now=stopped_at + dt.timedelta(minutes=1)) is False
    assert campaign.status == S.STOPPING, "a call still in flight keeps the campaign stopping"

    assert lifecycle.campaign_finish(campaign=campaign, now=stopped_at + lifecycle.STOP_GRACE) is True
    campaign.refresh_from_db()
    assert campaign.status == S.STOPPED
    dialing.refresh_from_db()
    waiting.refresh_from_db()
    assert (dialing.status, dialing.skip_reason) == ("failed", "no_outcome_before_stop")
    assert (waiting.status, waiting.skip_reason) == ("skipped", "campaign_stopped")
    assert lifecycle.recount_matches(campaign=campaign)


def test_a_stopped_campaign_cannot_be_stopped_again(campaign: Campaign) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(status=S.STOPPED)
    campaign.refresh_from_db()
    with pytest.raises(CampaignStateError):
        lifecycle.campaign_stop(campaign=campaign)


def test_end_of_day_stops_running_campaigns(campaign: Campaign) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(status=S.RUNNING, end_of_day=dt.time(21, 30))
    # The portal runs on America/New_York: 21:29 EDT is 01:29 UTC the next day.
    before = dt.datetime.combine(CAMPAIGN_DATE + dt.timedelta(days=1), dt.time(1, 29), tzinfo=dt.timezone.utc)
    assert lifecycle.campaigns_autostop(now=before) == []
    assert lifecycle.campaigns_autostop(now=before + dt.timedelta(minutes=1)) == [campaign.pk]
    campaign.refresh_from_db()
    assert campaign.status == S.STOPPING


def test_install_schedules_is_idempotent() -> None:
    call_command("install_schedules", verbosity=0)
    first = set(Schedule.objects.values_list("name", "func"))
    call_command("install_schedules", verbosity=0)
    assert set(Schedule.objects.values_list("name", "func")) == first
    assert {"campaigns-tick", "release-watchdog", "sms-send-due"} <= {name for name, _ in first}
    assert all(s.repeats == -1 for s in Schedule.objects.all())


def test_tick_finishes_and_flushes(campaign: Campaign, sample_warehouse: SampleWarehouse, settings: Any, tmp_path: Any) -> None:
    settings.RECONCILED_FILE_DIR = tmp_path / "reconciled"
    (item,) = _loaded(campaign, sample_warehouse, [client_row(days_past_due=3)])
    CallAttempt.objects.create(campaign=campaign, queue_item=item, call_id="call_tick_1", to_number=item.phone, status="ended", outcome="answered")
    QueueItem.objects.filter(pk=item.pk).update(status=QueueItem.Status.ANSWERED)
    Campaign.objects.filter(pk=campaign.pk).update(answered=1)
    lifecycle.campaign_stop(campaign=campaign)
    report = lifecycle.campaigns_tick(now=campaign.stopped_at + dt.timedelta(seconds=5))
    assert report["stopped"] == [campaign.pk] and report["flushed"] == [campaign.pk]
    campaign.refresh_from_db()
    assert campaign.status == S.FLUSHED
