"""Load progress moves per chunk: in the database (the admin page) and as the command's bar."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from cadences.models import DialerSettings
from campaigns.models import Campaign
from campaigns.queue import load as queue

from .conftest import CAMPAIGN_DATE, NOW, UNFILTERED_SQL, client_row


@pytest.mark.django_db
def test_counters_are_in_the_database_after_every_chunk(sample_warehouse, campaign):
    sample_warehouse.add([client_row(days_past_due=d) for d in (1, 2, 3, 4, 5, 6, 7)] + [client_row(phone="1")])
    seen = []

    def record(progress: queue.LoadProgress) -> None:
        stored = Campaign.objects.values_list("rows_read", "rows_inserted", "rows_rejected", "rows_no_touchpoint").get(pk=campaign.pk)
        seen.append(((progress.read, progress.inserted, progress.rejected, progress.no_touchpoint), stored, progress.total))

    queue.queue_load(campaign=campaign, now=NOW, sql=UNFILTERED_SQL, chunk_size=3, on_progress=record)

    # One report before the first chunk, then one per chunk of 3 rows: 3, 6, 8.
    assert [s[0][0] for s in seen] == [0, 3, 6, 8]
    for in_memory, stored, total in seen:
        assert in_memory == stored
        assert total == 8
    # RED Initial has steps on days 1, 3, 5 and 7; 2, 4, 6 have none.
    assert seen[-1][0] == (8, 4, 1, 3)


@pytest.mark.django_db
def test_load_queue_command_draws_a_progress_bar_and_summarises(sample_warehouse):
    sample_warehouse.add([client_row(days_past_due=d) for d in (1, 2, 3)])
    out, err = io.StringIO(), io.StringIO()

    call_command("load_queue", "--date", CAMPAIGN_DATE.isoformat(), "--chunk-size", "2", stdout=out, stderr=err)

    bar_lines = err.getvalue().splitlines()
    assert bar_lines[0].startswith("[" + "." * 30 + "]   0% of 3")
    assert "67% of 3 · 2 read" in bar_lines[1]
    assert bar_lines[-1].startswith("[" + "#" * 30 + "] 100% of 3 · 3 read · 2 queued")
    assert "3 rows read, 2 queued, 0 rejected, 1 with no touchpoint today" in out.getvalue()
    campaign = Campaign.objects.get(date=CAMPAIGN_DATE)
    assert (campaign.status, campaign.rows_inserted) == (Campaign.Status.LOADING, 2)


@pytest.mark.django_db
def test_load_queue_command_fails_with_the_warehouses_message(sample_warehouse):
    settings_row = DialerSettings.load()
    settings_row.queue_sql = "SELECT * FROM no_such_table"
    settings_row.save()

    with pytest.raises(CommandError, match="no such table: no_such_table"):
        call_command("load_queue", "--date", CAMPAIGN_DATE.isoformat(), stdout=io.StringIO(), stderr=io.StringIO())

    assert "no such table" in Campaign.objects.get(date=CAMPAIGN_DATE).load_error
