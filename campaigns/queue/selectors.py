"""Read-side queries for the campaign admin pages: load progress, rejected rows, item counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Count, QuerySet

from campaigns.models import Campaign, QueueItem, RejectedRow
from campaigns.spreadsheets import csv_row
from integrations.warehouse import client as warehouse

PROGRESS_FIELDS = (
    "status",
    "rows_read",
    "rows_inserted",
    "rows_rejected",
    "rows_no_touchpoint",
    "rows_already_queued",
    "load_started_at",
    "load_finished_at",
    "load_error",
)

# The rejected-rows CSV: where and why, then the row as it came in.
REJECTED_CSV_HEADER = ("row_number", "source", "client_id", "reason", *warehouse.REQUIRED_COLUMNS, *warehouse.OPTIONAL_COLUMNS)


def campaign_load_in_progress(*, campaign: Campaign) -> bool:
    return campaign.status == Campaign.Status.LOADING and campaign.load_finished_at is None and not campaign.load_error


def campaign_load_progress(*, campaign_id: int) -> dict[str, Any] | None:
    """The load counters as they are in the database right now (the admin polls this)."""
    row = Campaign.objects.filter(pk=campaign_id).values(*PROGRESS_FIELDS).first()
    if row is None:
        return None
    row["in_progress"] = row["status"] == Campaign.Status.LOADING and row["load_finished_at"] is None and not row["load_error"]
    row["queued_items"] = QueueItem.objects.filter(campaign_id=campaign_id).count()
    return row


def campaign_item_counts(*, campaign: Campaign) -> dict[str, int]:
    """Queue items per status, counted in SQL."""
    return dict(
        QueueItem.objects.filter(campaign=campaign).order_by().values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )


def campaign_rejected_rows(*, campaign: Campaign) -> QuerySet[RejectedRow]:
    return RejectedRow.objects.filter(campaign=campaign).order_by("source", "row_number", "pk")


def campaign_rejected_rows_csv(*, campaign: Campaign) -> Iterator[list[str]]:
    """Header, then one list of cells per rejected row, streamed from the database; every cell is
    neutralised (`spreadsheets.csv_cell`), since these rows come from outside."""
    yield list(REJECTED_CSV_HEADER)
    columns = REJECTED_CSV_HEADER[4:]
    rows = campaign_rejected_rows(campaign=campaign).values_list("row_number", "source", "client_id", "reason", "row")
    for row_number, source, client_id, reason, row in rows.iterator(chunk_size=2000):
        row = row if isinstance(row, dict) else {}
        yield csv_row([row_number, source, client_id, reason, *(row.get(c) for c in columns)])
