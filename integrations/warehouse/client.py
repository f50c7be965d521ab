"""The warehouse: Databricks in production, any DB-API database (SQLite, PostgreSQL) otherwise.

Which one: Databricks when DATABRICKS_SERVER_HOSTNAME, DATABRICKS_HTTP_PATH and DATABRICKS_TOKEN
are all set; else `settings.WAREHOUSE_URL` (default: the local SQLite sample warehouse that
`manage.py seed_warehouse` builds; `postgres://...` works too).

Table names. Databricks takes three-part names (`catalog.schema.table`) natively. The local
backends map them so the same setting works everywhere:

    name                                    PostgreSQL                              SQLite
    dialer_call_history                     "dialer_call_history"                   "dialer_call_history"
    billing.dialer_call_history             "billing"."dialer_call_history"         "billing__dialer_call_history"
    analytics.billing.dialer_call_history   "analytics_billing"."dialer_call_history"  "analytics_billing__dialer_call_history"

Each part must be a plain identifier (letters, digits, underscore): table names come from a
setting staff can edit, and identifiers cannot be bound as parameters.

Reads (`iter_query`, `query_columns`) run only what `readonly.read_only_check` accepts — one
SELECT, parsed in the warehouse's dialect — on a read-only connection: a read-only transaction with
a statement timeout, through the extended protocol (one statement per message), on PostgreSQL; a
`mode=ro` file with `query_only` and an interrupt at the deadline on SQLite; a statement timeout on
Databricks. Writes open read-write connections of their own and run only statements built here.

Writes are idempotent upserts on a key column in multi-row statements: MERGE on Databricks (whose
`executemany` is one round trip per row) with at most 255 bound parameters per statement, and
`INSERT ... ON CONFLICT (key) DO UPDATE` elsewhere. Nothing is created implicitly: `write_rows`
needs the table to exist (`ensure_table` creates it).
"""

# Reference: https://docs.databricks.com/en/dev-tools/python-sql-connector.html
# Reference: https://docs.databricks.com/en/sql/language-manual/delta-merge-into.html

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import re
import sqlite3
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import unquote, urlsplit

import psycopg
from django.conf import settings

from integrations import modes
from integrations.http import IntegrationError
from integrations.warehouse.readonly import read_only_check

log = logging.getLogger(__name__)

VENDOR = "warehouse"

REQUIRED_COLUMNS = ("client_id", "name", "phone", "segment", "days_past_due", "ring_group")
# date_of_birth and ssn_last4 are read only to be hashed for identity checks (never stored as given).
OPTIONAL_COLUMNS = (
    "amount_due", "timezone", "state", "postal_code", "payment_link", "email", "owner", "tier", "date_of_birth", "ssn_last4",
)  # fmt: skip

# The history table the day's outcomes are flushed to (one row per call attempt or SMS, keyed by
# Retell's call_id or our SMS local_id). The sample warehouse creates it with these columns, so
# whoever writes history uses the same mapping with `ensure_table(..., key=HISTORY_KEY)`.
DEFAULT_HISTORY_TABLE = "analytics.billing.dialer_call_history"
HISTORY_KEY = "record_id"
HISTORY_COLUMNS: dict[str, str] = {
    "record_id": "VARCHAR(120)",
    "record_type": "VARCHAR(16)",  # call, inbound_call, sms, skipped, ineligible
    "campaign_date": "DATE",
    "call_kind": "VARCHAR(16)",
    "client_id": "VARCHAR(64)",
    "client_name": "VARCHAR(200)",
    "phone": "VARCHAR(20)",
    "segment": "VARCHAR(64)",
    "phase": "VARCHAR(32)",
    "days_past_due": "INTEGER",
    "action_type": "VARCHAR(8)",
    "ring_group": "VARCHAR(64)",
    "item_status": "VARCHAR(16)",
    "skip_reason": "VARCHAR(64)",
    "outcome": "VARCHAR(16)",
    "call_status": "VARCHAR(16)",
    "disconnection_reason": "VARCHAR(64)",
    "in_voicemail": "BOOLEAN",
    "attempt_number": "INTEGER",
    "from_number": "VARCHAR(20)",
    "placed_at": "TIMESTAMP",
    "sent_at": "TIMESTAMP",
    "started_at": "TIMESTAMP",
    "ended_at": "TIMESTAMP",
    "duration_ms": "BIGINT",
    "transfer_destination": "VARCHAR(40)",
    "recording_url": "VARCHAR(500)",
    "summary": "VARCHAR(4000)",
    "sentiment": "VARCHAR(32)",
    "transcript": "TEXT",
    "custom_analysis": "JSON",
    "error": "TEXT",
    "cost": "DECIMAL(10,4)",
    "promise_date": "DATE",
    "promise_amount": "DECIMAL(12,2)",
    "sms_text": "VARCHAR(1600)",
    "sms_status": "VARCHAR(16)",
    "sms_inbox_id": "VARCHAR(64)",
    "sms_kind": "VARCHAR(24)",
    "heymarket_id": "VARCHAR(64)",
    "recorded_at": "TIMESTAMP",
}

# Databricks rejects statements with more than 255 parameter markers.
DATABRICKS_MAX_PARAMS = 255
# SQLite's historic default limit (SQLITE_MAX_VARIABLE_NUMBER) is 999; newer builds allow more,
# but 999 keeps statements small and works with every build.
SQLITE_MAX_PARAMS = 999
# PostgreSQL's protocol allows 65,535; smaller statements plan faster and hold locks briefly.
POSTGRES_MAX_PARAMS = 10_000

_TRAILING_SEMICOLON = re.compile(r";(?:\s*--[^\n]*|\s)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Column types `ensure_table` understands, per dialect. `decimal` takes "(precision,scale)".
_TYPES: dict[str, dict[str, str]] = {
    "databricks": {
        "text": "STRING", "integer": "BIGINT", "decimal": "DECIMAL", "timestamp": "TIMESTAMP",
        "date": "DATE", "boolean": "BOOLEAN", "float": "DOUBLE", "json": "STRING",
    },
    "postgresql": {
        "text": "TEXT", "integer": "BIGINT", "decimal": "NUMERIC", "timestamp": "TIMESTAMPTZ",
        "date": "DATE", "boolean": "BOOLEAN", "float": "DOUBLE PRECISION", "json": "TEXT",
    },
    "sqlite": {
        "text": "TEXT", "integer": "INTEGER", "decimal": "NUMERIC", "timestamp": "TEXT",
        "date": "TEXT", "boolean": "INTEGER", "float": "REAL", "json": "TEXT",
    },
}
_TYPE_ALIASES = {
    "string": "text", "varchar": "text", "char": "text", "int": "integer", "bigint": "integer",
    "smallint": "integer", "numeric": "decimal", "timestamptz": "timestamp", "datetime": "timestamp",
    "bool": "boolean", "double": "float", "real": "float",
}
_DECIMAL_ARGS = re.compile(r"^\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")


# --- Which warehouse ------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    dialect: str  # "databricks" | "sqlite" | "postgresql"
    location: str  # host, file path or database name (no credentials)
    url: str = ""  # the DB-API URL for sqlite/postgresql


def target() -> Target:
    """The configured warehouse, read from settings at call time (tests override them)."""
    if modes.is_live("warehouse"):
        return Target("databricks", settings.DATABRICKS_SERVER_HOSTNAME)
    url = settings.WAREHOUSE_URL
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative.db, sqlite:////absolute/path.db (the django-environ convention).
        path = unquote(parts.path)
        path = path[1:] if path.startswith("//") else path
        if not path or path == "/":
            raise IntegrationError("WAREHOUSE_URL names no SQLite file (expected sqlite:////path/to/file.sqlite3)", permanent=True, vendor=VENDOR)
        return Target("sqlite", path, url)
    if scheme in ("postgres", "postgresql", "pgsql"):
        database = unquote(parts.path.lstrip("/")) or "postgres"
        host = parts.hostname or "localhost"
        return Target("postgresql", f"{database} on {host}", url)
    raise IntegrationError(
        f"WAREHOUSE_URL scheme {scheme or '(none)'!r} is not supported; use sqlite:/// or postgres://, "
        "or set DATABRICKS_SERVER_HOSTNAME, DATABRICKS_HTTP_PATH and DATABRICKS_TOKEN",
        permanent=True,
        vendor=VENDOR,
    )


def describe() -> str:
    """One line for logs and `check_integrations`: "databricks <host>", "sqlite <path>"..."""
    t = target()
    return f"{t.dialect} {t.location}"


# --- Names and statements (pure functions, unit-tested) ------------------------------------


def _name_parts(table: str) -> list[str]:
    parts = (table or "").strip().split(".")
    if not 1 <= len(parts) <= 3 or not all(_IDENTIFIER.match(p) for p in parts):
        raise IntegrationError(
            f"table name {table!r} is not valid: use table, schema.table or catalog.schema.table "
            "with letters, digits and underscores only",
            permanent=True,
            vendor=VENDOR,
        )
    return parts


def quote_identifier(dialect: str, name: str) -> str:
    if not _IDENTIFIER.match(name or ""):
        raise IntegrationError(f"column name {name!r} is not a plain identifier", permanent=True, vendor=VENDOR)
    return f"`{name}`" if dialect == "databricks" else f'"{name}"'


def physical_table(dialect: str, table: str) -> tuple[str | None, str]:
    """(schema or None, table) as the dialect stores `table` — see the module docstring."""
    parts = _name_parts(table)
    if dialect == "databricks":
        return (".".join(parts[:-1]) or None, parts[-1])
    if dialect == "postgresql":
        if len(parts) == 1:
            return (None, parts[0])
        return ("_".join(parts[:-1]), parts[-1])
    if len(parts) == 1:
        return (None, parts[0])
    return (None, "_".join(parts[:-1]) + "__" + parts[-1])


def qualified_table(dialect: str, table: str) -> str:
    if dialect == "databricks":
        return ".".join(quote_identifier(dialect, p) for p in _name_parts(table))
    schema, name = physical_table(dialect, table)
    quoted = quote_identifier(dialect, name)
    return f"{quote_identifier(dialect, schema)}.{quoted}" if schema else quoted


def _placeholder(dialect: str, index: int) -> str:
    if dialect == "databricks":
        return f":p{index}"
    return "?" if dialect == "sqlite" else "%s"


def _max_params(dialect: str) -> int:
    return {"databricks": DATABRICKS_MAX_PARAMS, "sqlite": SQLITE_MAX_PARAMS}.get(dialect, POSTGRES_MAX_PARAMS)


def _adapt(dialect: str, value: Any) -> Any:
    """Python values the driver binds without surprises."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, sort_keys=True)
    if dialect == "sqlite":
        # The sqlite3 module has no Decimal adapter and its date adapters are deprecated.
        if isinstance(value, decimal.Decimal):
            return str(value)
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, bool):
            return int(value)
    return value


def _dedupe_on_key(rows: Sequence[Mapping[str, Any]], key: str) -> list[Mapping[str, Any]]:
    """Last row wins per key: a MERGE or ON CONFLICT statement must not touch a row twice."""
    by_key: dict[Any, Mapping[str, Any]] = {}
    for row in rows:
        if key not in row or row[key] is None:
            raise IntegrationError(f"a row has no value for the key column {key!r}", permanent=True, vendor=VENDOR)
        by_key[row[key]] = row
    return list(by_key.values())


@dataclass(frozen=True)
class Statement:
    sql: str
    params: list[Any] | dict[str, Any]
    rows: int

    @property
    def param_count(self) -> int:
        return len(self.params)


def upsert_statements(
    dialect: str, table: str, rows: Sequence[Mapping[str, Any]], *, key: str, columns: Sequence[str]
) -> list[Statement]:
    """The multi-row statements that upsert `rows` into `table`, idempotent on `key`.

    Databricks: MERGE from an inline VALUES table with named markers (:p0, :p1, ...), at most
    255 markers per statement. PostgreSQL/SQLite: INSERT ... ON CONFLICT (key) DO UPDATE.
    """
    columns = list(columns)
    if key not in columns:
        raise IntegrationError(f"the key column {key!r} must be one of the written columns", permanent=True, vendor=VENDOR)
    if len(set(columns)) != len(columns):
        raise IntegrationError("the written columns contain duplicates", permanent=True, vendor=VENDOR)
    quoted = [quote_identifier(dialect, c) for c in columns]
    qtable = qualified_table(dialect, table)
    qkey = quote_identifier(dialect, key)
    per_statement = _max_params(dialect) // len(columns)
    if per_statement < 1:
        raise IntegrationError(
            f"{len(columns)} columns exceed the {_max_params(dialect)} parameters one statement may bind",
            permanent=True,
            vendor=VENDOR,
        )
    unique_rows = _dedupe_on_key(rows, key)
    statements: list[Statement] = []
    for start in range(0, len(unique_rows), per_statement):
        chunk = unique_rows[start : start + per_statement]
        values = [[_adapt(dialect, row.get(c)) for c in columns] for row in chunk]
        if dialect == "databricks":
            statements.append(_merge_statement(qtable, qkey, quoted, values))
        else:
            statements.append(_on_conflict_statement(dialect, qtable, qkey, quoted, values))
    return statements


def _merge_statement(qtable: str, qkey: str, quoted: list[str], values: list[list[Any]]) -> Statement:
    params: dict[str, Any] = {}
    tuples = []
    index = 0
    for row in values:
        markers = []
        for value in row:
            params[f"p{index}"] = value
            markers.append(f":p{index}")
            index += 1
        tuples.append("(" + ", ".join(markers) + ")")
    non_key = [c for c in quoted if c != qkey]
    update = ", ".join(f"t.{c} = s.{c}" for c in non_key)
    sql = (
        f"MERGE INTO {qtable} AS t\n"
        f"USING (SELECT * FROM VALUES {', '.join(tuples)} AS v({', '.join(quoted)})) AS s\n"
        f"ON t.{qkey} = s.{qkey}\n"
        + (f"WHEN MATCHED THEN UPDATE SET {update}\n" if update else "")
        + f"WHEN NOT MATCHED THEN INSERT ({', '.join(quoted)}) VALUES ({', '.join('s.' + c for c in quoted)})"
    )
    return Statement(sql, params, len(values))


def _on_conflict_statement(dialect: str, qtable: str, qkey: str, quoted: list[str], values: list[list[Any]]) -> Statement:
    marker = _placeholder(dialect, 0)
    row_sql = "(" + ", ".join([marker] * len(quoted)) + ")"
    non_key = [c for c in quoted if c != qkey]
    conflict = f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in non_key)}" if non_key else "DO NOTHING"
    sql = (
        f"INSERT INTO {qtable} ({', '.join(quoted)}) VALUES {', '.join([row_sql] * len(values))}\n"
        f"ON CONFLICT ({qkey}) {conflict}"
    )
    params = [value for row in values for value in row]
    return Statement(sql, params, len(values))


def column_type(dialect: str, declared: str) -> str:
    """Map a generic type (text, integer, decimal(12,2), timestamp, date, boolean, float, json)."""
    text = (declared or "").strip().lower()
    match = re.match(r"^([a-z ]+?)\s*(\(.*\))?$", text)
    base = _TYPE_ALIASES.get(match.group(1), match.group(1)) if match else ""
    if base == "double precision":
        base = "float"
    if base not in _TYPES[dialect]:
        raise IntegrationError(
            f"column type {declared!r} is not one of {', '.join(sorted(_TYPES[dialect]))}", permanent=True, vendor=VENDOR
        )
    mapped = _TYPES[dialect][base]
    args = match.group(2) if match else None
    if base == "decimal" and args:
        decimal_args = _DECIMAL_ARGS.match(args)
        if not decimal_args:
            raise IntegrationError(f"column type {declared!r}: use decimal(precision,scale)", permanent=True, vendor=VENDOR)
        mapped += f"({decimal_args.group(1)},{decimal_args.group(2)})"
    return mapped


def create_table_statements(dialect: str, table: str, columns: Mapping[str, str], *, key: str) -> list[str]:
    if key not in columns:
        raise IntegrationError(f"the key column {key!r} must be one of the table's columns", permanent=True, vendor=VENDOR)
    schema, _name = physical_table(dialect, table)
    definitions = []
    for column, declared in columns.items():
        definition = f"{quote_identifier(dialect, column)} {column_type(dialect, declared)}"
        if column == key:
            # Databricks does not enforce uniqueness; MERGE on the key keeps it unique instead.
            definition += " NOT NULL" if dialect == "databricks" else " NOT NULL PRIMARY KEY"
        definitions.append(definition)
    statements = []
    if dialect == "postgresql" and schema:
        statements.append(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(dialect, schema)}")
    body = ",\n  ".join(definitions)
    suffix = " USING DELTA" if dialect == "databricks" else ""
    statements.append(f"CREATE TABLE IF NOT EXISTS {qualified_table(dialect, table)} (\n  {body}\n){suffix}")
    return statements


def add_column_statements(dialect: str, table: str, columns: Mapping[str, str]) -> list[str]:
    """ALTER TABLE statements adding `columns` to an existing table (none for an empty mapping)."""
    if not columns:
        return []
    qualified = qualified_table(dialect, table)
    definitions = [f"{quote_identifier(dialect, column)} {column_type(dialect, declared)}" for column, declared in columns.items()]
    if dialect == "databricks":
        return [f"ALTER TABLE {qualified} ADD COLUMNS ({', '.join(definitions)})"]
    return [f"ALTER TABLE {qualified} ADD COLUMN {definition}" for definition in definitions]


def probe_sql(sql: str) -> str:
    """Wrap a query so the warehouse plans it and reports its columns without returning rows."""
    # A final `;` (even followed by `-- comments`) would end the statement inside the parentheses.
    body = _TRAILING_SEMICOLON.sub("", sql.strip()).strip()
    if not body:
        raise IntegrationError("the query is empty", permanent=True, vendor=VENDOR)
    # Newlines around the body keep a trailing `-- comment` from swallowing the parenthesis.
    return f"SELECT * FROM (\n{body}\n) AS bd_probe LIMIT 0"


# --- Connections ---------------------------------------------------------------------------


def _sqlite_uri(path: str, *, create: bool, read_only: bool = False) -> str:
    mode = "ro" if read_only else "rwc" if create else "rw"
    return f"{Path(path).resolve().as_uri()}?mode={mode}"


class _SqliteDeadline:
    """SQLite has no statement timeout: a progress handler interrupts the running statement once
    its deadline passes (`arm` before each execute or fetch, so time spent between fetches on our
    side is not counted, as PostgreSQL counts each FETCH as a statement of its own)."""

    def __init__(self, connection: sqlite3.Connection, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        connection.set_progress_handler(self._expired, 10_000)

    def _expired(self) -> int:
        return int(time.monotonic() > self.deadline)

    def arm(self) -> None:
        self.deadline = time.monotonic() + self.seconds


class _SqliteConnection(sqlite3.Connection):
    """A connection that can carry its deadline (the C type takes no attributes of its own)."""

    bd_deadline: _SqliteDeadline | None = None


@contextmanager
def _connect(*, create: bool = False, read_only: bool = False, timeout_seconds: float | None = None) -> Iterator[tuple[Target, Any]]:
    """A connection to the configured warehouse. `read_only` connections are the only ones a
    stored query runs on; `timeout_seconds` bounds each statement on them."""
    t = target()
    connection: Any
    with _translated_errors(t, "connect"):
        if t.dialect == "databricks":
            # Imported here: the connector (thrift, pyarrow) is heavy and only live runs need it.
            from databricks import sql as databricks_sql

            # Databricks has no read-only session: the parser check and the grants stand instead.
            session = {"STATEMENT_TIMEOUT": str(max(1, round(timeout_seconds)))} if timeout_seconds else None
            connection = databricks_sql.connect(
                server_hostname=settings.DATABRICKS_SERVER_HOSTNAME,
                http_path=settings.DATABRICKS_HTTP_PATH,
                access_token=settings.DATABRICKS_TOKEN,
                session_configuration=session,
                _socket_timeout=120,
            )
        elif t.dialect == "sqlite":
            if create:
                Path(t.location).parent.mkdir(parents=True, exist_ok=True)
            # mode=rw: a missing file is an error, never a silently created empty warehouse.
            uri = _sqlite_uri(t.location, create=create, read_only=read_only)
            connection = sqlite3.connect(uri, uri=True, timeout=30, factory=_SqliteConnection)
            connection.execute("PRAGMA busy_timeout = 30000")
            if read_only:
                connection.execute("PRAGMA query_only = ON")
                if timeout_seconds:
                    connection.bd_deadline = _SqliteDeadline(connection, timeout_seconds)
        else:
            connection = psycopg.connect(t.url, connect_timeout=10)
            if read_only:
                # BEGIN READ ONLY for this transaction, and read-only by default for any other
                # one a statement could open; the timeout is the server's to enforce.
                connection.read_only = True
                connection.execute("SET default_transaction_read_only = on")
                if timeout_seconds:
                    connection.execute("SELECT set_config('statement_timeout', %s, false)", [f"{max(1, round(timeout_seconds * 1000))}ms"])
    try:
        yield t, connection
    finally:
        try:
            connection.close()
        except Exception:  # closing a broken connection must not hide the real error
            log.debug("warehouse connection close failed", exc_info=True)


def _arm_deadline(connection: Any) -> None:
    deadline = getattr(connection, "bd_deadline", None)
    if deadline is not None:
        deadline.arm()


_TRANSIENT_SQLITE = ("locked", "busy", "disk i/o")


def _is_transient(t: Target, exc: BaseException) -> bool:
    """Whether trying again later may work: the network, a server that went away, a busy file.
    A bad query (unknown table, syntax) is a ProgrammingError or a Databricks ServerOperationError,
    neither of which is an OperationalError."""
    if isinstance(exc, OSError):
        return True
    if t.dialect == "sqlite":
        return isinstance(exc, sqlite3.OperationalError) and any(w in str(exc).lower() for w in _TRANSIENT_SQLITE)
    transient: list[type[BaseException]] = [psycopg.OperationalError]
    # The Databricks connector is imported only by live runs; an error cannot be one of its types
    # before it is. Its RequestError and MaxRetryDurationError are OperationalErrors.
    databricks_errors = sys.modules.get("databricks.sql.exc")
    if databricks_errors is not None:
        transient.append(databricks_errors.OperationalError)
    return isinstance(exc, tuple(transient))


def _hint(t: Target, message: str) -> str:
    lowered = message.lower()
    if t.dialect == "sqlite" and lowered == "interrupted":
        return " (the statement timeout was reached)"
    if t.dialect == "sqlite" and ("unable to open" in lowered or "no such table" in lowered):
        return " (is the sample warehouse built? run: python manage.py seed_warehouse --clients 2000)"
    return ""


@contextmanager
def _translated_errors(t: Target, action: str) -> Iterator[None]:
    try:
        yield
    except IntegrationError:
        raise
    except Exception as exc:
        # Only database driver errors are translated; a bug in our code must surface as itself.
        module = type(exc).__module__ or ""
        # An OSError (unreachable host, unusable file path) is the warehouse being unavailable.
        if not (isinstance(exc, (sqlite3.Error, OSError)) or module.startswith(("psycopg", "databricks", "thrift"))):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        transient = _is_transient(t, exc)
        log.warning(
            "warehouse error",
            extra={"vendor": VENDOR, "warehouse": f"{t.dialect} {t.location}", "action": action, "transient": transient, "error": message[:300]},
        )
        raise IntegrationError(
            f"{t.dialect} warehouse ({action}): {message}{_hint(t, message)}", permanent=not transient, vendor=VENDOR
        ) from exc


# --- Public operations ---------------------------------------------------------------------


def query_check(sql: str) -> None:
    """Raise a permanent IntegrationError unless `sql` is one read-only SELECT in the configured
    warehouse's dialect (see `readonly`); reaches no warehouse."""
    read_only_check(sql, dialect=target().dialect)


def query_columns(sql: str, *, timeout_seconds: float | None = None) -> list[str]:
    """Check `sql` is one read-only SELECT, run it with no rows fetched and return its column
    names, lower-cased. Bounded by `timeout_seconds` (default WAREHOUSE_CHECK_TIMEOUT_SECONDS):
    the admin calls this while a person waits on a web worker."""
    timeout = settings.WAREHOUSE_CHECK_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    read_only_check(sql, dialect=target().dialect)
    probe = probe_sql(sql)
    with _connect(read_only=True, timeout_seconds=timeout) as (t, connection):
        read_only_check(probe, dialect=t.dialect)
        with _translated_errors(t, "query"):
            cursor = connection.cursor()
            try:
                _arm_deadline(connection)
                if t.dialect == "postgresql":
                    # A prepared statement is parsed by the server as exactly one statement.
                    cursor.execute(probe, prepare=True)
                else:
                    cursor.execute(probe)
                description = cursor.description or []
            finally:
                cursor.close()
    return [str(column[0]).lower() for column in description]


def iter_query(sql: str, *, chunk_size: int = 5000, timeout_seconds: float | None = None) -> Iterator[list[dict[str, Any]]]:
    """Check `sql` is one read-only SELECT, run it and yield its rows in chunks of at most
    `chunk_size` dicts (lower-case keys). Each statement (and on SQLite each fetch) is bounded
    by `timeout_seconds` (default WAREHOUSE_QUERY_TIMEOUT_SECONDS).

    Rows stream: SQLite and Databricks fetch as we go, PostgreSQL through a server-side cursor,
    so a large queue never sits in memory at once.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    timeout = settings.WAREHOUSE_QUERY_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    read_only_check(sql, dialect=target().dialect)
    started = time.monotonic()
    total = 0
    with _connect(read_only=True, timeout_seconds=timeout) as (t, connection):
        with _translated_errors(t, "query"):
            if t.dialect == "postgresql":
                # DECLARE … CURSOR FOR goes through the extended protocol: one statement only.
                cursor = connection.cursor(name="bd_warehouse_stream")
                cursor.itersize = chunk_size
            else:
                cursor = connection.cursor()
            if t.dialect == "sqlite":
                cursor.arraysize = chunk_size
        try:
            with _translated_errors(t, "query"):
                _arm_deadline(connection)
                cursor.execute(sql)
            names: list[str] | None = None
            while True:
                with _translated_errors(t, "fetch"):
                    _arm_deadline(connection)
                    batch = cursor.fetchmany(chunk_size)
                    if names is None:
                        names = [str(column[0]).lower() for column in cursor.description or []]
                if not batch:
                    break
                total += len(batch)
                yield [dict(zip(names, row)) for row in batch]
        finally:
            try:
                cursor.close()
            except Exception:
                log.debug("warehouse cursor close failed", exc_info=True)
    log.info(
        "warehouse query streamed",
        extra={"vendor": VENDOR, "warehouse": f"{t.dialect} {t.location}", "rows": total, "elapsed_ms": round((time.monotonic() - started) * 1000)},
    )


def write_rows(table: str, rows: Sequence[Mapping[str, Any]], *, key: str, columns: Sequence[str]) -> int:
    """Upsert `rows` into `table` on `key`; returns how many distinct keys were written.

    Idempotent: writing the same rows again changes nothing. On SQLite/PostgreSQL the whole call
    is one transaction; on Databricks each MERGE commits by itself, and a retry re-merges.
    """
    if not rows:
        return 0
    started = time.monotonic()
    with _connect() as (t, connection):
        statements = upsert_statements(t.dialect, table, rows, key=key, columns=columns)
        with _translated_errors(t, "write"):
            cursor = connection.cursor()
            try:
                for statement in statements:
                    cursor.execute(statement.sql, statement.params)
            finally:
                cursor.close()
            if t.dialect != "databricks":
                connection.commit()
    written = sum(s.rows for s in statements)
    log.info(
        "warehouse rows written",
        extra={
            "vendor": VENDOR,
            "warehouse": f"{t.dialect} {t.location}",
            "table": table,
            "rows": written,
            "statements": len(statements),
            "elapsed_ms": round((time.monotonic() - started) * 1000),
        },
    )
    return written


def ensure_table(table: str, columns: Mapping[str, str], *, key: str) -> None:
    """CREATE TABLE IF NOT EXISTS with `key` unique (types: see `column_type`); a table made by an
    earlier release gains the columns it lacks, so nothing new is dropped on its way there."""
    with _connect(create=True) as (t, connection):
        statements = create_table_statements(t.dialect, table, columns, key=key)
        with _translated_errors(t, "create table"):
            cursor = connection.cursor()
            try:
                # A table that exists is used as it is: even CREATE … IF NOT EXISTS needs the
                # right to create in its schema, which the portal's user need not keep (README).
                if not _table_present(t, cursor, table):
                    for statement in statements:
                        cursor.execute(statement)
                cursor.execute(f"SELECT * FROM {qualified_table(t.dialect, table)} LIMIT 0")
                present = {str(column[0]).lower() for column in cursor.description or ()}
                missing = {name: declared for name, declared in columns.items() if name.lower() not in present}
                for statement in add_column_statements(t.dialect, table, missing):
                    cursor.execute(statement)
            finally:
                cursor.close()
            if t.dialect != "databricks":
                connection.commit()
        if missing:
            log.info("warehouse table gained columns", extra={"table": table, "columns": sorted(missing)})


def drop_table(table: str) -> None:
    """DROP TABLE IF EXISTS — for rebuilding the local sample warehouse; refused on Databricks."""
    with _connect(create=True) as (t, connection):
        if t.dialect == "databricks":
            raise IntegrationError("refusing to drop a table in the Databricks warehouse", permanent=True, vendor=VENDOR)
        with _translated_errors(t, "drop table"):
            cursor = connection.cursor()
            try:
                cursor.execute(f"DROP TABLE IF EXISTS {qualified_table(t.dialect, table)}")
            finally:
                cursor.close()
            connection.commit()


def _table_present(t: Target, cursor: Any, table: str) -> bool:
    if t.dialect == "databricks":
        try:
            cursor.execute(f"SELECT * FROM {qualified_table(t.dialect, table)} LIMIT 0")
        except Exception as exc:
            if "TABLE_OR_VIEW_NOT_FOUND" in str(exc):
                return False
            raise
        return True
    schema, name = physical_table(t.dialect, table)
    if t.dialect == "sqlite":
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name])
    else:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_name = %s AND table_schema = COALESCE(%s, current_schema())",
            [name, schema],
        )
    return cursor.fetchone() is not None


def table_exists(table: str) -> bool:
    with _connect() as (t, connection):
        with _translated_errors(t, "describe table"):
            cursor = connection.cursor()
            try:
                return _table_present(t, cursor, table)
            finally:
                cursor.close()


def ping() -> None:
    """Open a connection and run `SELECT 1`; raises IntegrationError when the warehouse is unusable."""
    with _connect() as (t, connection):
        with _translated_errors(t, "ping"):
            cursor = connection.cursor()
            try:
                cursor.execute("SELECT 1")
                cursor.fetchall()
            finally:
                cursor.close()
