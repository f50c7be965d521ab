"""The warehouse down while the queue loads (the campaign shows the error; a retry loads it all,
once) and while the day is flushed (nothing is deleted; a later flush completes)."""

from __future__ import annotations

import datetime as dt

import pytest

from cadences.models import DialerSettings
from campaigns.models import Alert, CallAttempt, Campaign, QueueItem
from campaigns.lifecycle import invariants
from campaigns.lifecycle import campaign as lifecycle
from campaigns.calls.release import LoopState, Pacer, release_pass
from integrations.warehouse import sample
from tests.campaigns.conftest import unreachable_warehouse

from .harness import NOW, assert_invariants, business_clock, deliver_webhooks

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 6000  # more than one load chunk


def test_warehouse_down_during_load_and_flush(sandbox, shipped_cadences, sample_warehouse, settings, tmp_path) -> None:
    settings.RECONCILED_FILE_DIR = str(tmp_path / "reconciled")
    sample.seed_sample_warehouse(clients=CLIENTS, seed=11, history_table=DialerSettings.load().history_table)
    good_url, down_url = settings.WAREHOUSE_URL, unreachable_warehouse(tmp_path)
    campaign = lifecycle.campaign_create(date=NOW.date())

    settings.WAREHOUSE_URL = down_url
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING)
    lifecycle.campaign_load_and_run(campaign=campaign, now=NOW - dt.timedelta(hours=2), start_release=False)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT and campaign.load_error
    assert Alert.objects.filter(campaign=campaign, source="warehouse", level="error").exists()
    assert not QueueItem.objects.filter(campaign=campaign).exists()

    settings.WAREHOUSE_URL = good_url
    inserted = []
    for _ in range(2):  # the retry, and a second one that must add nothing
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING)
        lifecycle.campaign_load_and_run(campaign=campaign, now=NOW - dt.timedelta(hours=2), start_release=False)
        campaign.refresh_from_db()
        assert campaign.status == Campaign.Status.RUNNING and campaign.load_error == ""
        inserted.append(campaign.rows_inserted)
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.DRAFT)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)
    assert inserted[0] > 0 and inserted[1] == 0
    assert QueueItem.objects.filter(campaign=campaign).count() == inserted[0]

    # Part of the day is dialed, so the history holds calls as well as skips.
    now_fn = business_clock()
    for _ in range(20):
        campaign.refresh_from_db()
        release_pass(campaign=campaign, now_fn=now_fn, state=LoopState(pacer=Pacer(None)))
    deliver_webhooks()
    assert CallAttempt.objects.filter(campaign=campaign).exclude(call_id=None).exists()
    assert_invariants(campaign)
    lifecycle.campaign_stop(campaign=campaign, finish=False)
    assert lifecycle.campaign_finish(campaign=campaign, now=now_fn() + lifecycle.STOP_GRACE)

    items, attempts = QueueItem.objects.filter(campaign=campaign).count(), CallAttempt.objects.filter(campaign=campaign).count()
    settings.WAREHOUSE_URL = down_url
    for _ in range(2):
        campaign = lifecycle.campaign_flush(campaign=campaign)
        assert campaign.status == Campaign.Status.STOPPED and campaign.flush_error
        assert QueueItem.objects.filter(campaign=campaign).count() == items
        assert CallAttempt.objects.filter(campaign=campaign).count() == attempts
    assert campaign.alerts.filter(source="flush", acknowledged_at=None).count() == 1

    settings.WAREHOUSE_URL = good_url
    campaign = lifecycle.campaign_flush(campaign=campaign)
    rows = lifecycle.history_rows_in_warehouse(date=campaign.date)
    check = invariants.check_cleaned_after_flush(campaign=campaign, history_rows=rows)
    assert check.ok, check.detail
