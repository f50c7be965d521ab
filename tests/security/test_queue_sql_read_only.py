"""The queue SQL (every stored warehouse query) can only read, on real warehouses.

A billing manager edits the query in the admin; the warehouse runs it with the portal's
credentials. Each attack below was accepted once — by the save-time check or at a run — and must
now be refused before it reaches the warehouse, with the warehouse left as it was. Behind the
parser stand the read-only connections: the tests marked "parser bypassed" switch the parser off
to show the warehouse itself refuses to write.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.test import Client, override_settings
from django.urls import reverse

from cadences.models import DialerSettings
from integrations.http import IntegrationError
from integrations.warehouse import client as warehouse
from integrations.warehouse import readonly
from tests.cadences.admin_forms import change_form_data

PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
COLUMNS = "client_id, name, phone, segment, days_past_due, ring_group"
ROWS = [(f"C{n:03d}", f"Client {n}", f"+1212555{n:04d}", "RED Initial", 20, "billing") for n in range(5)]

# The shapes the security review ran through the admin, plus the refusals it already saw.
CLOSE_THE_WRAPPER_DELETE = f"SELECT {COLUMNS} FROM billing_queue) AS x; DELETE FROM billing_queue; COMMIT; SELECT * FROM (SELECT {COLUMNS} FROM billing_queue"
CLOSE_THE_WRAPPER_CREATE = f"SELECT {COLUMNS} FROM billing_queue) AS x; CREATE TABLE pwned (x int); COMMIT; SELECT * FROM (SELECT {COLUMNS} FROM billing_queue"
SLEEP = f"SELECT {COLUMNS} FROM billing_queue WHERE pg_sleep(3) IS NOT NULL"
READ_SERVER_FILE = f"SELECT {COLUMNS}, pg_read_file('/etc/hostname') AS email FROM billing_queue"
CHANGE_SESSION = f"SELECT {COLUMNS}, set_config('default_transaction_read_only', 'off', false) AS email FROM billing_queue"
ATTACKS = {
    "close the wrapper, delete, commit": CLOSE_THE_WRAPPER_DELETE,
    "close the wrapper, create a table": CLOSE_THE_WRAPPER_CREATE,
    "sleep": SLEEP,
    "read a server file": READ_SERVER_FILE,
    "change a session setting": CHANGE_SESSION,
    "plain delete": "DELETE FROM billing_queue",
    "plain drop": "DROP TABLE billing_queue",
    "second statement": f"SELECT {COLUMNS} FROM billing_queue; UPDATE billing_queue SET name = 'x'",
    "data-changing CTE": f"WITH gone AS (DELETE FROM billing_queue RETURNING *) SELECT {COLUMNS} FROM gone",
    "select into": f"SELECT {COLUMNS} INTO pwned FROM billing_queue",
    "row locks": f"SELECT {COLUMNS} FROM billing_queue FOR UPDATE",
    "sequence": f"SELECT {COLUMNS}, nextval('bd_seq') AS email FROM billing_queue",
}


@dataclass
class Warehouse:
    dialect: str
    url: str

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        if self.dialect == "sqlite":
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as connection:
                return connection.execute(sql).fetchall()
        with psycopg.connect(self.url, autocommit=True) as connection:
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def rows(self) -> int:
        return int(self.execute("SELECT count(*) FROM billing_queue")[0][0])

    def tables(self) -> set[str]:
        if self.dialect == "sqlite":
            return {name for (name,) in self.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {name for (name,) in self.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def _fill(execute: Any) -> None:
    execute("CREATE TABLE billing_queue (client_id TEXT, name TEXT, phone TEXT, segment TEXT, days_past_due INTEGER, ring_group TEXT)")
    for row in ROWS:
        execute("INSERT INTO billing_queue VALUES ('%s', '%s', '%s', '%s', %d, '%s')" % row)


@pytest.fixture
def sqlite_warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    path = tmp_path / "warehouse.sqlite3"
    with sqlite3.connect(path) as connection:
        _fill(connection.execute)
    url = f"sqlite:///{path}"
    with override_settings(WAREHOUSE_URL=url, DATABRICKS_SERVER_HOSTNAME="", DATABRICKS_HTTP_PATH="", DATABRICKS_TOKEN=""):
        yield Warehouse("sqlite", url)


@pytest.fixture
def postgresql_warehouse() -> Iterator[Warehouse]:
    """A scratch PostgreSQL database of its own, dropped afterwards."""
    name = f"bd_readonly_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL does not answer at 127.0.0.1:5432")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        url = f"postgres://postgres@127.0.0.1:5432/{name}"
        try:
            with psycopg.connect(url, autocommit=True) as connection:
                _fill(connection.execute)
                connection.execute("CREATE SEQUENCE bd_seq")
                # Functions a warehouse may hold that the parser cannot see into.
                connection.execute(
                    "CREATE FUNCTION bd_wipe() RETURNS text LANGUAGE plpgsql AS "
                    "$$ BEGIN DELETE FROM billing_queue; RETURN 'gone'; END $$"
                )
                connection.execute(
                    "CREATE FUNCTION bd_slow_constant() RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
                    "$$ BEGIN PERFORM pg_sleep(5); RETURN 20; END $$"
                )
            with override_settings(WAREHOUSE_URL=url, DATABRICKS_SERVER_HOSTNAME="", DATABRICKS_HTTP_PATH="", DATABRICKS_TOKEN=""):
                yield Warehouse("postgresql", url)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def any_warehouse(request: pytest.FixtureRequest) -> Warehouse:
    return request.getfixturevalue(f"{request.param}_warehouse")


def _stream(sql: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [row for chunk in warehouse.iter_query(sql, **kwargs) for row in chunk]


# --- at every run and at save time, on both DB-API warehouses --------------------------------


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_an_attack_is_refused_before_it_reaches_the_warehouse(any_warehouse: Warehouse, attack: str) -> None:
    sql = ATTACKS[attack]
    before = any_warehouse.tables()
    started = time.monotonic()
    with pytest.raises(IntegrationError, match="the query is refused") as refused:
        warehouse.query_columns(sql)
    assert refused.value.permanent
    with pytest.raises(IntegrationError, match="the query is refused"):
        _stream(sql)
    # Wrapped the way the queue load counts and revalidates, it is refused all the same.
    with pytest.raises(IntegrationError, match="the query is refused"):
        _stream(f"SELECT COUNT(*) AS row_count FROM (\n{sql}\n) AS queue_rows")
    assert time.monotonic() - started < 2  # nothing slept
    assert any_warehouse.rows() == len(ROWS)
    assert any_warehouse.tables() == before


def test_a_plain_select_still_reads(any_warehouse: Warehouse) -> None:
    sql = f"WITH q AS (SELECT {COLUMNS} FROM billing_queue) SELECT * FROM q WHERE name LIKE 'Client%'; -- the day's list"
    assert warehouse.query_columns(sql) == COLUMNS.split(", ")
    assert [row["client_id"] for row in _stream(sql)] == [row[0] for row in ROWS]


# --- the billing manager's save, through the admin --------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("attack", ["close the wrapper, delete, commit", "close the wrapper, create a table", "sleep", "read a server file", "change a session setting"])
def test_the_admin_refuses_to_save_an_attack(admin_client: Client, postgresql_warehouse: Warehouse, attack: str) -> None:
    url = reverse("admin:cadences_dialersettings_change", args=[DialerSettings.load().pk])
    stored = DialerSettings.load().queue_sql
    data = change_form_data(admin_client, url)
    data["queue_sql"] = ATTACKS[attack]
    started = time.monotonic()
    response = admin_client.post(url, data)
    assert time.monotonic() - started < 2
    assert response.status_code == 200
    (error,) = response.context["adminform"].form.errors["queue_sql"]
    assert error.startswith("This query cannot be stored: the query is refused")
    assert DialerSettings.load().queue_sql == stored
    assert postgresql_warehouse.rows() == len(ROWS)
    assert "pwned" not in postgresql_warehouse.tables()


@pytest.mark.django_db
def test_a_slow_query_cannot_hold_the_web_worker_on_save(admin_client: Client, postgresql_warehouse: Warehouse, settings: Any) -> None:
    # The parser cannot know a function is slow; the planner folds this one (immutable) and waits.
    settings.WAREHOUSE_CHECK_TIMEOUT_SECONDS = 1
    url = reverse("admin:cadences_dialersettings_change", args=[DialerSettings.load().pk])
    data = change_form_data(admin_client, url)
    data["queue_sql"] = f"SELECT {COLUMNS} FROM billing_queue WHERE days_past_due = bd_slow_constant()"
    started = time.monotonic()
    response = admin_client.post(url, data)
    assert time.monotonic() - started < 4
    (error,) = response.context["adminform"].form.errors["queue_sql"]
    assert error.startswith("The warehouse refused this query:") and "statement timeout" in error


# --- the walls behind the parser ---------------------------------------------------------------


@pytest.fixture
def parser_bypassed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warehouse, "read_only_check", lambda sql, *, dialect: None)


def test_postgres_runs_in_a_read_only_transaction(postgresql_warehouse: Warehouse) -> None:
    # A function the warehouse holds that deletes: the parser sees only a call.
    with pytest.raises(IntegrationError, match="read-only transaction"):
        _stream(f"SELECT {COLUMNS.replace('name', 'bd_wipe() AS name')} FROM billing_queue")
    assert postgresql_warehouse.rows() == len(ROWS)


def test_postgres_takes_one_statement_even_without_the_parser(postgresql_warehouse: Warehouse, parser_bypassed: None) -> None:
    # The save-time probe wraps the query, which the attack closes; a run takes it as it is.
    for attack in (CLOSE_THE_WRAPPER_DELETE, CLOSE_THE_WRAPPER_CREATE):
        with pytest.raises(IntegrationError, match="multiple commands"):
            warehouse.query_columns(attack)
    for attack in ("DELETE FROM billing_queue", "CREATE TABLE pwned (x int)"):
        with pytest.raises(IntegrationError, match="multiple commands"):
            _stream(f"SELECT {COLUMNS} FROM billing_queue; {attack}")
    assert postgresql_warehouse.rows() == len(ROWS)
    assert "pwned" not in postgresql_warehouse.tables()


def test_sqlite_is_opened_read_only(sqlite_warehouse: Warehouse, parser_bypassed: None) -> None:
    for statement in ("DELETE FROM billing_queue", "CREATE TABLE pwned (x int)"):
        with pytest.raises(IntegrationError, match="readonly|read-only|query_only"):
            _stream(statement)
    assert sqlite_warehouse.rows() == len(ROWS)
    assert "pwned" not in sqlite_warehouse.tables()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_run_is_bounded_by_the_statement_timeout(request: pytest.FixtureRequest, dialect: str) -> None:
    request.getfixturevalue(f"{dialect}_warehouse")
    endless = {
        "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) AS client_id FROM n",
        "postgresql": "SELECT count(*) AS client_id FROM generate_series(1, 100000000000) AS n",
    }[dialect]
    started = time.monotonic()
    with pytest.raises(IntegrationError, match="timeout"):
        _stream(endless, timeout_seconds=0.5)
    assert time.monotonic() - started < 3


# --- Databricks: the parser is the wall ---------------------------------------------------------


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_databricks_queries_are_refused_by_the_parser_before_any_connection(attack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_connection(**kwargs: Any) -> Any:
        raise AssertionError("a refused query must not open a warehouse connection")

    monkeypatch.setattr(warehouse, "_connect", no_connection)
    with override_settings(DATABRICKS_SERVER_HOSTNAME="dbc.example.cloud.databricks.com", DATABRICKS_HTTP_PATH="/sql/1.0/warehouses/x", DATABRICKS_TOKEN="dapi-x"):
        assert warehouse.target().dialect == "databricks"
        with pytest.raises(IntegrationError, match="the query is refused"):
            warehouse.query_columns(ATTACKS[attack])
        with pytest.raises(IntegrationError, match="the query is refused"):
            _stream(ATTACKS[attack])


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT reflect('java.lang.Thread', 'sleep', 100000L) AS client_id",
        "SELECT java_method('java.lang.System', 'exit', 0) AS client_id",
        "SELECT secret('scope', 'key') AS client_id",
        "SELECT http_request(conn => 'c', method => 'POST', path => '/x') AS client_id",
        "INSERT INTO analytics.billing.x SELECT 1",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "CACHE TABLE billing_queue",
    ],
)
def test_databricks_functions_that_reach_outside_are_refused(sql: str) -> None:
    with pytest.raises(IntegrationError, match="the query is refused"):
        readonly.read_only_check(sql, dialect="databricks")


# --- the grants README.md asks for are enough ---------------------------------------------------


def test_read_on_the_source_and_write_on_the_history_table_are_enough(postgresql_warehouse: Warehouse) -> None:
    history = warehouse.DEFAULT_HISTORY_TABLE
    warehouse.ensure_table(history, warehouse.HISTORY_COLUMNS, key=warehouse.HISTORY_KEY)  # created once, by its owner
    role = f"bd_dialer_{uuid.uuid4().hex[:8]}"
    schema, table = warehouse.physical_table("postgresql", history)
    postgresql_warehouse.execute(f"CREATE ROLE {role} LOGIN")
    try:
        postgresql_warehouse.execute(f"GRANT SELECT ON billing_queue TO {role}")
        postgresql_warehouse.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        postgresql_warehouse.execute(f'GRANT SELECT, INSERT, UPDATE ON "{schema}"."{table}" TO {role}')
        as_dialer = postgresql_warehouse.url.replace("postgres://postgres@", f"postgres://{role}@")
        with override_settings(WAREHOUSE_URL=as_dialer):
            assert len(_stream(f"SELECT {COLUMNS} FROM billing_queue")) == len(ROWS)
            # What the flush does: make sure of the table, then upsert twice (a retried flush).
            warehouse.ensure_table(history, warehouse.HISTORY_COLUMNS, key=warehouse.HISTORY_KEY)
            row = {"record_id": "call_1", "record_type": "call", "outcome": "answered"}
            for _ in range(2):
                assert warehouse.write_rows(history, [row], key=warehouse.HISTORY_KEY, columns=list(row)) == 1
    finally:
        postgresql_warehouse.execute(f"DROP OWNED BY {role}")
        postgresql_warehouse.execute(f"DROP ROLE {role}")
    assert postgresql_warehouse.execute(f'SELECT outcome FROM "{schema}"."{table}"') == [("answered",)]
