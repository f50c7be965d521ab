"""A load outside any transaction: on PostgreSQL a writer thread inserts while the next chunk is checked."""

from __future__ import annotations

import pytest

from campaigns.models import Campaign, QueueItem, RejectedRow
from campaigns.queue import load as queue
from integrations.http import IntegrationError
from campaigns.lifecycle import campaign as lifecycle

from .conftest import CAMPAIGN_DATE, NOW, UNFILTERED_SQL, client_row
from .release_factories import make_call_step, make_segment

# Committed transactions, as in a worker. Transactional tests run after the others and an
# earlier one may have flushed the shipped cadences, so these build their own segment.
pytestmark = pytest.mark.django_db(transaction=True)

SEGMENT = "Writer Thread Segment"


@pytest.fixture
def segment():
    segment = make_segment(SEGMENT)
    for day in (1, 3, 5, 7):
        make_call_step(segment, day=day)
    return segment


def test_a_committed_load_writes_every_chunk_once_with_matching_counters(sample_warehouse, segment):
    campaign = lifecycle.campaign_create(date=CAMPAIGN_DATE)
    rows = sample_warehouse.add(
        [client_row(segment=SEGMENT, days_past_due=d % 8) for d in range(40)] + [client_row(segment=SEGMENT, phone="1")]
    )
    reports = []

    progress = queue.queue_load(
        campaign=campaign, now=NOW, sql=UNFILTERED_SQL, chunk_size=7, on_progress=lambda p: reports.append((p.read, p.inserted))
    )

    campaign.refresh_from_db()
    items = QueueItem.objects.filter(campaign=campaign)
    # Steps on days 1, 3, 5 and 7 of 0..7: half the forty rows.
    assert items.count() == progress.inserted == campaign.rows_inserted == 20
    assert (campaign.rows_read, campaign.rows_rejected, campaign.rows_no_touchpoint) == (41, 1, 20)
    assert [r[0] for r in reports] == [0, 7, 14, 21, 28, 35, 41]
    assert RejectedRow.objects.get(campaign=campaign).client_id == rows[-1]["client_id"]


def test_a_warehouse_error_keeps_the_written_chunks_consistent_with_the_counters(sample_warehouse, segment):
    campaign = lifecycle.campaign_create(date=CAMPAIGN_DATE)
    sample_warehouse.add([client_row(segment=SEGMENT, days_past_due=3) for _ in range(12)])
    failing = (
        "SELECT client_id, name, phone, segment, days_past_due, ring_group, amount_due, timezone, state, postal_code, "
        "payment_link, email, CASE WHEN rowid > 9 THEN abs(-9223372036854775807 - 1) END AS boom FROM billing_queue"
    )

    with pytest.raises(IntegrationError, match="overflow"):
        queue.queue_load(campaign=campaign, now=NOW, sql=failing, chunk_size=3)

    campaign.refresh_from_db()
    written = QueueItem.objects.filter(campaign=campaign).count()
    assert 0 < written <= 9
    assert campaign.rows_inserted == written
    assert "overflow" in campaign.load_error
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.LOADING
