"""Shared fixtures for the campaigns tests: a real warehouse file and warehouse-shaped rows."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from campaigns.models import Campaign
from integrations.warehouse import client as warehouse
from integrations.warehouse import sample
from campaigns.lifecycle import campaign as lifecycle

from .sftp_server import SftpTestServer

CAMPAIGN_DATE = dt.date(2025, 6, 10)
NOW = dt.datetime(2025, 6, 10, 13, 0, tzinfo=dt.timezone.utc)

# The sample table without the default query's filters, for rows the warehouse should never
# send (day 181, bad values): the loader must still refuse them itself.
UNFILTERED_SQL = (
    "SELECT client_id, name, phone, segment, days_past_due, ring_group, amount_due, timezone, state, "
    "postal_code, payment_link, email FROM billing_queue"
)

_client_numbers = itertools.count(1)


def client_row(**overrides: Any) -> dict[str, Any]:
    """One valid warehouse row (RED Initial, day 1, New York); override any column."""
    number = next(_client_numbers)
    row: dict[str, Any] = {
        "client_id": f"T{number:07d}",
        "name": f"Client {number}",
        "phone": f"+1212555{100 + number % 100:04d}",
        "segment": "RED Initial",
        "days_past_due": 1,
        "ring_group": "billing",
        "amount_due": "120.50",
        "timezone": None,
        "state": "NY",
        "postal_code": "10001",
        "payment_link": "https://pay.example.com/invoice/abc",
        "email": "client@example.com",
        "date_of_birth": None,
        "ssn_last4": None,
        "balance_resolved": 0,
    }
    row.update(overrides)
    return row


class SampleWarehouse:
    """The local warehouse (an SQLite file) holding the `billing_queue` table the default SQL reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def reset(self) -> None:
        warehouse.drop_table(sample.QUEUE_TABLE)
        warehouse.ensure_table(sample.QUEUE_TABLE, sample.QUEUE_COLUMNS, key=sample.QUEUE_KEY)

    def add(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = list(rows)
        if rows:
            warehouse.write_rows(sample.QUEUE_TABLE, rows, key=sample.QUEUE_KEY, columns=list(sample.QUEUE_COLUMNS))
        return rows

    def resolve(self, client_ids: Iterable[str]) -> None:
        """The clients paid: the default queue SQL stops returning them."""
        rows = [{"client_id": c, "balance_resolved": 1} for c in client_ids]
        if rows:
            warehouse.write_rows(sample.QUEUE_TABLE, rows, key=sample.QUEUE_KEY, columns=["client_id", "balance_resolved"])


@pytest.fixture
def sample_warehouse(tmp_path: Path, settings: Any) -> Iterator[SampleWarehouse]:
    settings.WAREHOUSE_URL = f"sqlite:///{tmp_path / 'warehouse.sqlite3'}"
    settings.DATABRICKS_SERVER_HOSTNAME = ""
    store = SampleWarehouse(tmp_path / "warehouse.sqlite3")
    store.reset()
    yield store


@pytest.fixture
def campaign(db: None) -> Campaign:
    return lifecycle.campaign_create(date=CAMPAIGN_DATE)


def unreachable_warehouse(tmp_path: Path) -> str:
    """A warehouse URL that cannot be opened or created (its parent is a file): an outage."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    return f"sqlite:///{blocker / 'warehouse.sqlite3'}"


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[SftpTestServer]:
    """A real SFTP server on a free loopback port, serving tmp_path/sftp (see sftp_server.py)."""
    root = tmp_path / "sftp"
    root.mkdir()
    server = SftpTestServer(root)
    server.start()
    yield server
    server.shutdown()
