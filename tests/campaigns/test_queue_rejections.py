"""Unusable rows are stored with their reason, and every other row still loads."""

from __future__ import annotations

import pytest

from campaigns.models import Account, Campaign, QueueItem, RejectedRow
from campaigns.queue import load as queue
from integrations.http import IntegrationError

from .conftest import NOW, UNFILTERED_SQL, client_row

BAD_ROWS = [
    ({"phone": "555-0100"}, "is not a valid number"),
    ({"phone": "not a phone"}, "is not a phone number"),
    ({"phone": "+44 20 7946 0958"}, "not a North American number"),
    ({"segment": "Gold Premium"}, "unknown segment 'Gold Premium'"),
    ({"segment": None}, "missing value for segment"),
    ({"name": ""}, "missing value for name"),
    ({"ring_group": None}, "missing value for ring_group"),
    ({"days_past_due": 181}, "days_past_due 181 is outside 0–180"),
    ({"days_past_due": -3}, "days_past_due -3 is outside 0–180"),
    ({"days_past_due": "12.5"}, "days_past_due '12.5' is not a whole number"),
    ({"amount_due": "twelve"}, "amount_due 'twelve' is not an amount"),
    ({"amount_due": "-5"}, "amount_due -5 is negative"),
    # Past Decimal's 28 digits, rounding to cents raised InvalidOperation, which no check caught.
    ({"amount_due": "1e30"}, "amount_due 1E+30 is too large"),
    ({"amount_due": "123456789012345678901234567890.5"}, "is too large"),
    ({"timezone": "Mars/Olympus"}, "time zone 'Mars/Olympus' is not an IANA time zone name"),
    ({"state": "Narnia"}, "state 'Narnia' is not a US state"),
    ({"postal_code": "ABC12"}, "postal code 'ABC12' is not a US ZIP code"),
]


@pytest.mark.django_db
def test_bad_rows_are_rejected_with_their_reason_and_the_rest_load(sample_warehouse, campaign):
    good_before = client_row()
    bad = [client_row(**overrides) for overrides, _ in BAD_ROWS]
    good_after = client_row(days_past_due=12)
    sample_warehouse.add([good_before, *bad, good_after])

    progress = queue.queue_load(campaign=campaign, now=NOW, sql=UNFILTERED_SQL)

    assert set(QueueItem.objects.filter(campaign=campaign).values_list("client_id", flat=True)) == {
        good_before["client_id"],
        good_after["client_id"],
    }
    rejected = {r.client_id: r for r in RejectedRow.objects.filter(campaign=campaign)}
    for row, (_, reason) in zip(bad, BAD_ROWS):
        assert reason in rejected[row["client_id"]].reason, (row, rejected[row["client_id"]].reason)
        assert rejected[row["client_id"]].source == "warehouse"
        # The row is kept as it came, for whoever fixes the data.
        assert rejected[row["client_id"]].row["phone"] == row["phone"]
    # Row numbers are positions in the query result (the good row is row 1).
    assert sorted(r.row_number for r in rejected.values()) == list(range(2, 2 + len(BAD_ROWS)))
    campaign.refresh_from_db()
    assert (campaign.rows_read, campaign.rows_inserted, campaign.rows_rejected) == (len(BAD_ROWS) + 2, 2, len(BAD_ROWS))
    assert progress.rejected == len(BAD_ROWS)


@pytest.mark.django_db
def test_a_client_twice_in_one_load_is_queued_once_and_the_repeat_reported(sample_warehouse, campaign):
    first = client_row(client_id="DUP-1")
    sample_warehouse.add([first])
    # The key of the sample table is client_id, so the repeat comes from the query itself.
    sql = f"{UNFILTERED_SQL} UNION ALL SELECT client_id, name, phone, segment, days_past_due, ring_group, amount_due, timezone, state, postal_code, payment_link, email FROM billing_queue"

    progress = queue.queue_load(campaign=campaign, now=NOW, sql=sql)

    assert QueueItem.objects.filter(campaign=campaign, client_id="DUP-1").count() == 1
    assert progress.inserted == 1
    assert [r.reason for r in RejectedRow.objects.filter(campaign=campaign)] == ["client_id 'DUP-1' appears more than once"]


@pytest.mark.django_db
def test_a_row_missing_a_column_is_rejected_naming_it(campaign):
    run = queue.load_run_create(campaign=campaign, source=queue.SOURCE_CSV, now=NOW)
    row = client_row()
    del row["phone"]

    chunk = queue.queue_rows_prepare(run=run, rows=[(7, row)])

    assert chunk.items == []
    assert [(r.row_number, r.reason) for r in chunk.rejections] == [(7, "missing column: phone")]


@pytest.mark.django_db
def test_a_query_without_a_required_column_loads_nothing_and_says_which(sample_warehouse, campaign):
    sample_warehouse.add([client_row()])
    sql = "SELECT client_id, name, segment, days_past_due, ring_group FROM billing_queue"

    with pytest.raises(IntegrationError, match="phone"):
        queue.queue_load(campaign=campaign, now=NOW, sql=sql)

    campaign.refresh_from_db()
    assert "required column(s) phone" in campaign.load_error
    assert not QueueItem.objects.filter(campaign=campaign).exists()
    assert not RejectedRow.objects.filter(campaign=campaign).exists()


@pytest.mark.django_db
def test_a_warehouse_error_mid_load_keeps_what_was_inserted_and_records_the_error(sample_warehouse, campaign):
    rows = sample_warehouse.add(client_row() for _ in range(5))
    # SQLite raises "integer overflow" when it computes abs() of the smallest integer, here from
    # the fourth row on: the first chunks arrive, then the warehouse fails mid-stream.
    failing = (
        "SELECT client_id, name, phone, segment, days_past_due, ring_group, amount_due, timezone, state, postal_code, "
        "payment_link, email, CASE WHEN rowid > 3 THEN abs(-9223372036854775807 - 1) END AS boom FROM billing_queue"
    )

    with pytest.raises(IntegrationError, match="overflow"):
        queue.queue_load(campaign=campaign, now=NOW, sql=failing, chunk_size=1)

    campaign.refresh_from_db()
    assert "overflow" in campaign.load_error
    loaded = set(QueueItem.objects.filter(campaign=campaign).values_list("client_id", flat=True))
    # The driver may read a row ahead before it meets the error, so "the rows before it" is
    # some of the first three, each inserted and counted.
    assert loaded and loaded <= {r["client_id"] for r in rows[:3]}
    assert campaign.rows_inserted == len(loaded)

    # The retry (with the query fixed) continues: the rest go in, nothing twice.
    progress = queue.queue_load(campaign=campaign, now=NOW)

    campaign.refresh_from_db()
    assert campaign.load_error == ""
    assert (progress.inserted, progress.already_queued) == (5 - len(loaded), len(loaded))
    assert QueueItem.objects.filter(campaign=campaign).count() == 5


@pytest.mark.django_db
def test_a_stopped_campaign_takes_no_load(sample_warehouse, campaign):
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPED)
    sample_warehouse.add([client_row()])

    with pytest.raises(queue.QueueLoadError, match="stopped"):
        queue.queue_load(campaign=campaign, now=NOW)

    assert not QueueItem.objects.filter(campaign=campaign).exists()


@pytest.mark.django_db
def test_a_payment_link_that_is_not_a_web_address_is_dropped_and_the_client_still_loads(sample_warehouse, campaign):
    (row,) = sample_warehouse.add([client_row(payment_link="javascript:alert(1)")])
    queue.queue_load(campaign=campaign, now=NOW)
    item = QueueItem.objects.get(client_id=row["client_id"])
    assert item.payment_link == "" and Account.objects.get(client_id=row["client_id"]).payment_link == ""
