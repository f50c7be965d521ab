"""Fuzzing what staff and the warehouse feed in: CSV uploads, queue rows, SMS templates.

Bad input gets a clear refusal (CsvFileError, a rejected row, validation messages) and never
another exception.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadences import templating
from cadences.models import Phase
from campaigns.models import Campaign, QueueItem, RejectedRow
from campaigns.queue import load as queue
from integrations.warehouse.client import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from campaigns.lifecycle import campaign as lifecycle
from tests.campaigns.dashboard_factories import make_segment, make_step

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOW = dt.datetime(2025, 6, 10, 12, 0, tzinfo=dt.timezone.utc)
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

# Cell values near the edges of what the checks accept, mixed with anything at all.
cells = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["RED Initial", "red initial", "billing", "+12125550123", "2125550123", "555-0100", "1", "20", "181", "-3",
                     "120.50", "1e9", "NaN", "inf", "$12", "NY", "Texas", "10001", "America/New_York", "Mars/Base",
                     "https://pay.example.com/x", "javascript:alert(1)", "a@example.com", " ", ""]),
    st.integers(-(10**20), 10**20).map(str),
)  # fmt: skip


def segments() -> None:
    segment = make_segment("RED Initial")
    for day in (1, 20):
        make_step(segment, day=day)


def campaign() -> Campaign:
    return Campaign.objects.filter(date=NOW.date()).first() or lifecycle.campaign_create(date=NOW.date())


def check_progress(progress: queue.LoadProgress, before_items: int, before_rejected: int) -> None:
    assert progress.read == progress.inserted + progress.rejected + progress.no_touchpoint + progress.already_queued
    assert QueueItem.objects.count() - before_items == progress.inserted
    assert RejectedRow.objects.count() - before_rejected == progress.rejected


@FUZZ
@given(data=st.binary(max_size=400))
def test_csv_upload_of_random_bytes(data: bytes) -> None:
    target = campaign()
    before = QueueItem.objects.count(), RejectedRow.objects.count()
    try:
        progress = queue.queue_upload_csv(campaign=target, upload=io.BytesIO(data), filename="clients.csv", now=NOW)
    except queue.CsvFileError as exc:
        assert str(exc)
        assert (QueueItem.objects.count(), RejectedRow.objects.count()) == before  # a refused file loads nothing
    else:
        check_progress(progress, *before)


@FUZZ
@given(
    header=st.lists(st.sampled_from(COLUMNS + ("", "extra", "CLIENT_ID ")), min_size=1, max_size=14),
    rows=st.lists(st.lists(cells, max_size=16), max_size=8),
    bom=st.booleans(),
)
def test_csv_upload_of_random_csv(header: list[str], rows: list[list[str]], bom: bool) -> None:
    segments()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    data = ("\ufeff" if bom else "").encode() + buffer.getvalue().encode("utf-8", errors="surrogatepass")
    target = campaign()
    before = QueueItem.objects.count(), RejectedRow.objects.count()
    try:
        progress = queue.queue_upload_csv(campaign=target, upload=io.BytesIO(data), filename="clients.csv", now=NOW)
    except queue.CsvFileError as exc:
        assert str(exc)
        assert (QueueItem.objects.count(), RejectedRow.objects.count()) == before
    else:
        check_progress(progress, *before)


warehouse_values = st.one_of(
    cells,
    st.none(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
)


@FUZZ
@given(rows=st.lists(st.dictionaries(st.sampled_from(COLUMNS + (queue.EXTRA_FIELDS, "other")), warehouse_values), max_size=10))
def test_queue_rows_through_the_row_checker(rows: list[dict[str, Any]]) -> None:
    segments()
    for row in rows:
        if queue.EXTRA_FIELDS in row:
            row[queue.EXTRA_FIELDS] = [str(row[queue.EXTRA_FIELDS])]
    run = queue.load_run_create(campaign=campaign(), source="warehouse", now=NOW)
    chunk = queue.queue_rows_prepare(run=run, rows=list(enumerate(rows, start=2)))
    assert chunk.read == len(rows)
    assert len(chunk.items) + len(chunk.rejections) + chunk.no_touchpoint + chunk.already_queued == len(rows)
    for rejection in chunk.rejections:
        assert rejection.reason and len(rejection.client_id) <= 64
    # What passes the checks can be written as it is.
    if chunk.items:
        assert queue.queue_items_insert(campaign_id=run.campaign.pk, items=chunk.items) == len(chunk.items)


# --- SMS templates ----------------------------------------------------------------------------

template_pieces = st.sampled_from(
    ["{{", "}}", "{%", "%}", "{#", "#}", " if ", " endif ", " else ", " firstof ", " comment ", " endcomment ", " load ",
     " include ", " for ", "client_name", "first_name", "amount_due", "payment_link", "company_name", "secret", "|",
     "upper", "default:", "date:", "truncatechars:", '"x"', "'", ".", "__class__", "0", "-1", ":", "Reply STOP to opt out.",
     "card number", "$5", " "]
)  # fmt: skip
template_bodies = st.one_of(st.text(max_size=80), st.lists(template_pieces | st.text(max_size=5), max_size=25).map("".join))
contexts = st.fixed_dictionaries(
    {},
    optional={name: st.one_of(st.text(max_size=20), st.integers(), st.decimals(allow_nan=False), st.none(), st.dates())
              for name in templating.ALLOWED_VARIABLES},
)  # fmt: skip


@FUZZ
@given(body=template_bodies, phase=st.sampled_from(Phase.values), context=contexts)
def test_sms_templates_validate_or_render_never_raise(body: str, phase: str, context: dict[str, Any]) -> None:
    problems = templating.validate_template(body, phase=phase)
    assert isinstance(problems, list) and all(isinstance(p, str) and p for p in problems)
    if not problems:
        rendered = templating.render_template(body, context)
        assert isinstance(rendered, str)
        assert "Reply STOP" in rendered or "reply stop" in rendered.lower()
        info = templating.sms_length_info(rendered)
        assert templating.sms_length_summary(info)


@FUZZ
@given(text=st.text(max_size=400))
def test_sms_length_of_any_text(text: str) -> None:
    info = templating.sms_length_info(text)
    assert isinstance(templating.sms_length_summary(info), str)


def test_the_fuzzed_csv_can_load_a_row() -> None:
    # The strategies above reach the insert path, not only the refusals.
    segments()
    data = (
        "client_id,name,phone,segment,days_past_due,ring_group,amount_due\n"
        "F1,Pat Doe,+12125550123,RED Initial,20,billing,120.50\n"
    ).encode()
    progress = queue.queue_upload_csv(campaign=campaign(), upload=io.BytesIO(data), filename="clients.csv", now=NOW)
    assert progress.inserted == 1 and QueueItem.objects.get().amount_due == Decimal("120.50")
