from __future__ import annotations

import datetime as dt
import socket
from decimal import Decimal

import pytest

from integrations.http import IntegrationError
from integrations.warehouse import client as warehouse

COLUMNS = {"record_id": "VARCHAR(120)", "outcome": "VARCHAR(16)", "amount": "DECIMAL(12,2)", "ended_at": "TIMESTAMP", "attempt": "INTEGER"}


def _rows(n: int, outcome: str = "answered") -> list[dict[str, object]]:
    return [
        {
            "record_id": f"call_{i:05d}",
            "outcome": outcome,
            "amount": Decimal("12.50") + i,
            "ended_at": dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.timezone.utc),
            "attempt": 1,
        }
        for i in range(n)
    ]


def _all(sql: str) -> list[dict[str, object]]:
    return [row for chunk in warehouse.iter_query(sql) for row in chunk]


def _physical(table: str) -> str:
    return warehouse.qualified_table(warehouse.target().dialect, table)


def test_write_rows_is_idempotent_and_updates_on_the_key(warehouse_url: str, table_name: str) -> None:
    warehouse.ensure_table(table_name, COLUMNS, key="record_id")
    warehouse.ensure_table(table_name, COLUMNS, key="record_id")  # IF NOT EXISTS: a second call is harmless

    assert warehouse.write_rows(table_name, _rows(450), key="record_id", columns=list(COLUMNS)) == 450
    assert warehouse.write_rows(table_name, _rows(450), key="record_id", columns=list(COLUMNS)) == 450
    rows = _all(f"SELECT record_id, outcome, amount, attempt FROM {_physical(table_name)} ORDER BY record_id")
    assert len(rows) == 450
    assert rows[3] == {"record_id": "call_00003", "outcome": "answered", "amount": rows[3]["amount"], "attempt": 1}
    assert Decimal(str(rows[3]["amount"])) == Decimal("15.50")

    # A retried flush with newer outcomes overwrites, never duplicates.
    warehouse.write_rows(table_name, _rows(10, outcome="voicemail"), key="record_id", columns=list(COLUMNS))
    counts = _all(f"SELECT outcome, COUNT(*) AS n FROM {_physical(table_name)} GROUP BY outcome ORDER BY outcome")
    assert counts == [{"outcome": "answered", "n": 440}, {"outcome": "voicemail", "n": 10}]


def test_ensure_table_adds_the_columns_an_older_table_lacks(warehouse_url: str, table_name: str) -> None:
    older = {name: COLUMNS[name] for name in ("record_id", "outcome")}
    warehouse.ensure_table(table_name, older, key="record_id")
    warehouse.write_rows(table_name, _rows(2), key="record_id", columns=list(older))
    warehouse.ensure_table(table_name, COLUMNS, key="record_id")
    warehouse.ensure_table(table_name, COLUMNS, key="record_id")  # nothing left to add: harmless
    assert warehouse.query_columns(f"SELECT * FROM {_physical(table_name)}") == list(COLUMNS)
    warehouse.write_rows(table_name, _rows(3, outcome="voicemail"), key="record_id", columns=list(COLUMNS))
    got = _all(f"SELECT record_id, outcome, attempt FROM {_physical(table_name)} ORDER BY record_id")
    assert got == [{"record_id": f"call_0000{i}", "outcome": "voicemail", "attempt": 1} for i in range(3)]


def test_write_rows_keeps_the_last_row_of_a_repeated_key(warehouse_url: str, table_name: str) -> None:
    warehouse.ensure_table(table_name, COLUMNS, key="record_id")
    rows = _rows(2) + [{**_rows(1)[0], "outcome": "transferred"}]
    assert warehouse.write_rows(table_name, rows, key="record_id", columns=list(COLUMNS)) == 2
    got = _all(f"SELECT record_id, outcome FROM {_physical(table_name)} ORDER BY record_id")
    assert got == [{"record_id": "call_00000", "outcome": "transferred"}, {"record_id": "call_00001", "outcome": "answered"}]


def test_write_rows_creates_nothing(warehouse_url: str, table_name: str) -> None:
    warehouse.ensure_table("analytics.billing.anchor", {"k": "text"}, key="k")  # the database itself exists
    with pytest.raises(IntegrationError) as excinfo:
        warehouse.write_rows(table_name, _rows(1), key="record_id", columns=list(COLUMNS))
    assert excinfo.value.permanent
    assert not warehouse.table_exists(table_name)


def test_iter_query_streams_in_chunks_with_lowercase_keys(warehouse_url: str, table_name: str) -> None:
    warehouse.ensure_table(table_name, COLUMNS, key="record_id")
    warehouse.write_rows(table_name, _rows(23), key="record_id", columns=list(COLUMNS))
    chunks = list(warehouse.iter_query(f"SELECT record_id AS Record_ID, attempt FROM {_physical(table_name)} ORDER BY record_id", chunk_size=10))
    assert [len(c) for c in chunks] == [10, 10, 3]
    assert set(chunks[0][0]) == {"record_id", "attempt"}
    assert chunks[2][-1]["record_id"] == "call_00022"


def test_iter_query_can_be_abandoned_midway(warehouse_url: str, table_name: str) -> None:
    warehouse.ensure_table(table_name, COLUMNS, key="record_id")
    warehouse.write_rows(table_name, _rows(30), key="record_id", columns=list(COLUMNS))
    stream = warehouse.iter_query(f"SELECT record_id FROM {_physical(table_name)}", chunk_size=5)
    assert len(next(stream)) == 5
    stream.close()  # closes cursor and connection; the next query works normally
    assert len(_all(f"SELECT record_id FROM {_physical(table_name)}")) == 30


def test_query_columns_fetches_no_rows_and_reports_names(warehouse_url: str, table_name: str) -> None:
    warehouse.ensure_table(table_name, COLUMNS, key="record_id")
    warehouse.write_rows(table_name, _rows(5), key="record_id", columns=list(COLUMNS))
    sql = f"SELECT record_id AS Client_ID, outcome FROM {_physical(table_name)} ORDER BY record_id; -- trailing comment"
    assert warehouse.query_columns(sql) == ["client_id", "outcome"]


def test_query_errors_carry_the_warehouse_message_and_are_permanent(warehouse_url: str, table_name: str) -> None:
    warehouse.ensure_table(table_name, COLUMNS, key="record_id")
    with pytest.raises(IntegrationError) as excinfo:
        warehouse.query_columns(f"SELECT no_such_column FROM {_physical(table_name)}")
    assert excinfo.value.permanent
    assert "no_such_column" in str(excinfo.value)
    with pytest.raises(IntegrationError) as excinfo:
        list(warehouse.iter_query("SELEKT 1"))
    assert excinfo.value.permanent


def test_table_exists_and_drop(warehouse_url: str, table_name: str) -> None:
    assert not _exists_after_anchor(table_name)
    warehouse.ensure_table(table_name, COLUMNS, key="record_id")
    assert warehouse.table_exists(table_name)
    warehouse.drop_table(table_name)
    assert not warehouse.table_exists(table_name)


def _exists_after_anchor(table: str) -> bool:
    warehouse.ensure_table("analytics.billing.anchor", {"k": "text"}, key="k")
    return warehouse.table_exists(table)


def test_describe_names_the_backend(warehouse_url: str) -> None:
    description = warehouse.describe()
    if warehouse_url.startswith("sqlite"):
        assert description.startswith("sqlite ") and description.endswith("warehouse.sqlite3")
    else:
        assert description == "postgresql bd_integrations_warehouse on 127.0.0.1"


def test_missing_sqlite_file_is_an_actionable_error(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.WAREHOUSE_URL = f"sqlite:///{tmp_path / 'absent.sqlite3'}"
    with pytest.raises(IntegrationError) as excinfo:
        warehouse.query_columns("SELECT 1")
    assert "seed_warehouse" in str(excinfo.value)
    assert not (tmp_path / "absent.sqlite3").exists()  # never creates an empty warehouse


def test_unsupported_url_scheme(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WAREHOUSE_URL = "mysql://somewhere/db"
    with pytest.raises(IntegrationError, match="not supported"):
        warehouse.describe()


def test_databricks_is_chosen_only_with_all_three_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DATABRICKS_SERVER_HOSTNAME = "adb-123.azuredatabricks.net"
    settings.DATABRICKS_HTTP_PATH = "/sql/1.0/warehouses/abc"
    settings.DATABRICKS_TOKEN = ""
    assert warehouse.describe().startswith("sqlite ")
    settings.DATABRICKS_TOKEN = "dapi-secret"
    assert warehouse.describe() == "databricks adb-123.azuredatabricks.net"


def test_transient_errors_are_told_by_their_type(settings) -> None:  # type: ignore[no-untyped-def]
    import psycopg
    from databricks.sql import exc as databricks_exc

    pg = warehouse.Target("postgresql", "db")
    assert warehouse._is_transient(pg, psycopg.OperationalError("server closed the connection unexpectedly"))
    assert not warehouse._is_transient(pg, psycopg.errors.UndefinedTable("relation does not exist"))
    assert warehouse._is_transient(pg, databricks_exc.RequestError("could not reach the workspace"))
    assert warehouse._is_transient(pg, databricks_exc.MaxRetryDurationError("gave up"))
    assert not warehouse._is_transient(pg, databricks_exc.ServerOperationError("[TABLE_OR_VIEW_NOT_FOUND]"))

    class OperationalError(Exception):  # a name alone says nothing
        pass

    assert not warehouse._is_transient(pg, OperationalError("looks familiar"))


def test_an_unreachable_postgres_warehouse_is_a_transient_error(settings) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.WAREHOUSE_URL = f"postgres://postgres@127.0.0.1:{port}/nowhere"
    with pytest.raises(IntegrationError) as excinfo:
        warehouse.query_columns("SELECT 1 AS one")
    assert not excinfo.value.permanent
