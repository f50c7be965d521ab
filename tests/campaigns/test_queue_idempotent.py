"""Loading the same campaign twice adds nothing."""

from __future__ import annotations

import pytest

from cadences.models import DialerSettings
from campaigns.models import Campaign, QueueItem, RejectedRow
from campaigns.queue import load as queue
from campaigns.lifecycle import campaign as lifecycle

from .conftest import NOW, UNFILTERED_SQL, client_row


@pytest.mark.django_db
def test_loading_twice_adds_nothing(sample_warehouse, campaign):
    rows = sample_warehouse.add(
        [client_row(), client_row(days_past_due=12), client_row(days_past_due=2), client_row(phone="123")]
    )

    first = queue.queue_load(campaign=campaign, now=NOW, sql=UNFILTERED_SQL)
    items_after_first = list(QueueItem.objects.filter(campaign=campaign).order_by("pk").values_list("pk", "client_id", "status"))
    second = queue.queue_load(campaign=campaign, now=NOW, sql=UNFILTERED_SQL)

    assert (first.inserted, first.no_touchpoint, first.rejected) == (2, 1, 1)
    assert (second.inserted, second.already_queued, second.no_touchpoint, second.rejected) == (0, 2, 1, 1)
    assert list(QueueItem.objects.filter(campaign=campaign).order_by("pk").values_list("pk", "client_id", "status")) == items_after_first
    # The rejected rows are the latest run's, not one copy per run.
    assert list(RejectedRow.objects.filter(campaign=campaign).values_list("client_id", flat=True)) == [rows[3]["client_id"]]
    campaign.refresh_from_db()
    assert (campaign.rows_read, campaign.rows_inserted, campaign.rows_already_queued, campaign.rows_rejected) == (4, 0, 2, 1)


@pytest.mark.django_db
def test_a_reload_queues_only_clients_new_to_the_campaign(sample_warehouse, campaign):
    sample_warehouse.add([client_row(), client_row()])
    queue.queue_load(campaign=campaign, now=NOW)
    newcomer = sample_warehouse.add([client_row(days_past_due=12)])[0]

    progress = queue.queue_load(campaign=campaign, now=NOW)

    assert (progress.inserted, progress.already_queued) == (1, 2)
    assert QueueItem.objects.filter(campaign=campaign).count() == 3
    assert QueueItem.objects.filter(campaign=campaign, client_id=newcomer["client_id"]).exists()


@pytest.mark.django_db
def test_the_insert_skips_a_client_queued_behind_the_loads_back(campaign, sample_warehouse):
    """A client queued by someone else after the load read the campaign is skipped, not doubled."""
    row = client_row()
    sample_warehouse.add([row])
    run = queue.load_run_create(campaign=campaign, source=queue.SOURCE_WAREHOUSE, now=NOW)
    chunk = queue.queue_rows_prepare(run=run, rows=[(1, row)])
    queue.queue_items_insert(campaign_id=campaign.pk, items=chunk.items)

    inserted = queue.queue_items_insert(campaign_id=campaign.pk, items=chunk.items)

    assert inserted == 0
    assert QueueItem.objects.filter(campaign=campaign, client_id=row["client_id"]).count() == 1


@pytest.mark.django_db
def test_campaign_create_is_one_per_date_with_todays_release_settings(db):
    settings_row = DialerSettings.load()
    settings_row.batch_size = 25
    settings_row.release_threshold = 3
    settings_row.save()

    first = lifecycle.campaign_create(date=NOW.date())
    second = lifecycle.campaign_create(date=NOW.date())

    assert first.pk == second.pk
    assert Campaign.objects.filter(date=NOW.date()).count() == 1
    assert (first.batch_size, first.release_threshold, first.status) == (25, 3, Campaign.Status.DRAFT)
