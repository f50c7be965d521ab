from __future__ import annotations

import io
import re

import phonenumbers
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from phonenumbers import timezone as phone_timezone

from integrations.warehouse import client as warehouse
from integrations.warehouse import sample

SEGMENTS = {"RED Initial", "RED Recurring", "Reso Initial", "Reso Recurring", "Reso Servicing"}
DEFAULT_QUEUE_SQL = """SELECT client_id, name, phone, segment, days_past_due, ring_group,
       amount_due, timezone, state, postal_code, payment_link, email, owner, tier, date_of_birth, ssn_last4
FROM billing_queue
WHERE days_past_due BETWEEN 0 AND 180
  AND balance_resolved = 0"""


def _queue() -> list[dict[str, object]]:
    return [row for chunk in warehouse.iter_query("SELECT * FROM billing_queue ORDER BY client_id") for row in chunk]


def _seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_warehouse", *args, stdout=out)
    return out.getvalue()


def test_same_seed_same_data_and_a_different_seed_differs(warehouse_url: str) -> None:
    output = _seed("--clients", "300", "--seed", "7")
    assert re.search(r"Done in \d+\.\d\d s", output)
    first = _queue()
    _seed("--clients", "300", "--seed", "7")
    assert _queue() == first
    _seed("--clients", "300", "--seed", "8")
    assert _queue() != first
    assert len(first) == 300


def test_a_smaller_sample_is_a_prefix_of_a_larger_one(warehouse_url: str) -> None:
    _seed("--clients", "120", "--seed", "3")
    small = _queue()
    _seed("--clients", "240", "--seed", "3")
    assert _queue()[:120] == small


def test_clean_sample_has_the_queue_shape_and_realistic_values(warehouse_url: str) -> None:
    _seed("--clients", "1000", "--seed", "11")
    rows = _queue()
    assert {r["segment"] for r in rows} == SEGMENTS
    days = [int(r["days_past_due"]) for r in rows]  # type: ignore[call-overload]
    assert min(days) == 0 and max(days) == 180
    assert len(set(days)) > 150  # spread over the lifecycle, not clumped
    assert {r["state"] for r in rows if r["state"]} >= set(sample.AREA_CODES)  # all 50 states and DC
    zones: set[str] = set()
    for row in rows:
        phone = str(row["phone"])
        assert re.fullmatch(r"\+1[2-9]\d\d5550(1\d\d)", phone), phone
        number = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(number)
        zones.update(phone_timezone.time_zones_for_number(number))
        assert float(row["amount_due"]) > 0  # type: ignore[arg-type]
        assert row["client_id"] and row["name"] and row["ring_group"] in ("billing", "resurrection")
    # Hawaii, Alaska, Arizona, Pacific, Mountain, Central and Eastern all appear.
    assert {"Pacific/Honolulu", "America/Anchorage", "America/Phoenix", "America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York"} <= zones
    assert warehouse.query_columns(DEFAULT_QUEUE_SQL) == list(warehouse.REQUIRED_COLUMNS + warehouse.OPTIONAL_COLUMNS)
    assert warehouse.table_exists(warehouse.DEFAULT_HISTORY_TABLE)


def test_dirty_rows_come_in_a_known_proportion(warehouse_url: str) -> None:
    output = _seed("--clients", "1600", "--dirty", "--seed", "5")
    assert "bad rows: 80 (" in output  # one in 20
    rows = _queue()
    bad = {
        "invalid_phone": [r for r in rows if r["phone"] and not re.fullmatch(r"\+1\d{10}", str(r["phone"]))],
        "unknown_segment": [r for r in rows if r["segment"] and r["segment"] not in SEGMENTS],
        "missing_name": [r for r in rows if r["name"] is None],
        "missing_phone": [r for r in rows if r["phone"] is None],
        "missing_segment": [r for r in rows if r["segment"] is None],
        "missing_days_past_due": [r for r in rows if r["days_past_due"] is None],
        "days_past_due_out_of_range": [r for r in rows if r["days_past_due"] is not None and not 0 <= int(r["days_past_due"]) <= 180],  # type: ignore[call-overload]
        "missing_ring_group": [r for r in rows if r["ring_group"] is None],
    }
    assert {kind: len(found) for kind, found in bad.items()} == {kind: 10 for kind in sample.DIRTY_KINDS}
    # Bad rows are never hidden by the queue SQL's balance filter.
    assert all(r["balance_resolved"] == 0 for found in bad.values() for r in found)


def test_seed_refuses_databricks(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DATABRICKS_SERVER_HOSTNAME = "adb-1.azuredatabricks.net"
    settings.DATABRICKS_HTTP_PATH = "/sql/1.0/warehouses/x"
    settings.DATABRICKS_TOKEN = "dapi-x"
    with pytest.raises(CommandError, match="refuses to write to Databricks"):
        _seed("--clients", "10")
