"""Steps 1 and 2 of the daily workflow: load the queue, keep it honest while the day runs.

Queue load runs the queue SQL (stored in `DialerSettings`, editable in the admin) against the
warehouse and streams the rows in chunks. Each row is checked, its phone normalised to E.164,
its cadence step for today resolved from (segment, days past due) with the phase routing, and
its local time zone(s) derived; valid rows are inserted in bulk, every unusable row is stored
as a `RejectedRow` with its reason, and the rest load. A CSV upload goes through the very same
row checks. Progress counters move once per chunk, in the chunk's transaction, so the admin
page shows a load as it happens and a counter never disagrees with the rows.

Idempotency: a queue item is unique per (campaign, client). A reload (or a retry after a
warehouse error) skips clients already queued and inserts only the rest, so loading twice adds
nothing. The rejected rows of a warehouse load are replaced by each run, not accumulated.

Speed: the whole cadence is resolved from memory (one `cadence_index()` per load), the clients
already queued are read once per load, and on PostgreSQL each chunk's accounts and items go in
with one `COPY` into a staging table and an INSERT ... SELECT for each, written by two threads
while the next chunk is checked; on SQLite by one INSERT OR IGNORE run for all rows of a chunk.
`make bench` measures it against the seed's 100-row ORM batches and raw COPY.

Revalidation re-runs the query for its client ids only and, in one set-based UPDATE against a
temporary table of those ids, marks queued items whose client is gone as `ineligible`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import operator
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from django.db import connection, models, transaction
from django.db.models import F
from django_q.models import Schedule

from cadences.models import MAX_CADENCE_DAY, ActionType, CadenceStep, DialerSettings, Segment
from cadences.resolution import CadenceIndex, cadence_index
from campaigns import geo
from campaigns.queue import identity
from campaigns.models import Account, AccountPhone, Alert, Campaign, QueueItem, RejectedRow, Source
from campaigns.alerts import alert_raise
from integrations import clock, http
from integrations.http import IntegrationError
from integrations.warehouse import client as warehouse

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = tuple(warehouse.REQUIRED_COLUMNS)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(warehouse.OPTIONAL_COLUMNS)

SOURCE_WAREHOUSE = Source.WAREHOUSE
SOURCE_CSV = Source.CSV
SOURCE_SFTP = Source.SFTP
# Where a CSV line's fields beyond the header go (such a line is rejected).
EXTRA_FIELDS = "__extra_fields__"

# Rows fetched from the warehouse and processed per transaction. Each chunk commits its items,
# its rejected rows and the progress counters together.
CHUNK_SIZE = 5000
# Item fields PostgreSQL copies from the cadence step itself (see _postgres_items_from_staging).
STEP_TEXT_FIELDS = ("voicemail_prompt", "live_call_prompt")
# Threads writing chunks in parallel on PostgreSQL (each its own connection and transaction).
WRITER_THREADS = 2
# bulk_create batch (rejected rows, and items on databases other than PostgreSQL and SQLite).
BULK_BATCH_SIZE = 2000
# A larger CSV belongs in the warehouse query, not in an admin upload.
CSV_MAX_BYTES = 50 * 1024 * 1024

# Campaigns that may still take new queue items.
LOADABLE_STATUSES = (
    Campaign.Status.DRAFT,
    Campaign.Status.LOADING,
    Campaign.Status.RUNNING,
    Campaign.Status.PAUSED,
)
# Items revalidation may still take out of the day: nothing released, dialed or sent.
REVALIDATED_STATUSES = (QueueItem.Status.QUEUED, QueueItem.Status.SMS_SCHEDULED)

def _max_length(field_name: str) -> int:
    length = getattr(QueueItem._meta.get_field(field_name), "max_length", None)
    if not isinstance(length, int):
        raise TypeError(f"QueueItem.{field_name} has no max_length")
    return length


_MAX_LENGTHS: dict[str, int] = {
    "client_id": _max_length("client_id"),
    "name": _max_length("client_name"),
    "email": _max_length("email"),
    "payment_link": _max_length("payment_link"),
    "ring_group": _max_length("warehouse_ring_group"),
}
_TIMEZONES_MAX_LENGTH = _max_length("timezones")
_OWNER_MAX_LENGTH = 100
_TIER_MAX_LENGTH = 32
_AMOUNT_FIELD = QueueItem._meta.get_field("amount_due")
_AMOUNT_LIMIT = Decimal(10) ** (_AMOUNT_FIELD.max_digits - _AMOUNT_FIELD.decimal_places)
_CENT = Decimal("0.01")


class QueueLoadError(Exception):
    """The campaign takes no more queue items (it is stopping, stopped or flushed)."""


class CsvFileError(ValueError):
    """An uploaded file that is not a usable CSV; nothing from it was loaded."""


@dataclass
class LoadProgress:
    """What one load (or upload) did so far; also its final result."""

    read: int = 0
    inserted: int = 0
    rejected: int = 0
    no_touchpoint: int = 0
    already_queued: int = 0
    total: int | None = None
    # The rows left out, one by one, when the caller keeps them (a file's result lists them).
    rejections: list[RowRejection] | None = None

    def log_fields(self) -> dict[str, int]:
        return {
            "rows_read": self.read,
            "rows_inserted": self.inserted,
            "rows_rejected": self.rejected,
            "rows_no_touchpoint": self.no_touchpoint,
            "rows_already_queued": self.already_queued,
        }


@dataclass
class RowRejection:
    row_number: int
    client_id: str
    reason: str
    row: dict[str, Any]


@dataclass
class PreparedChunk:
    """One chunk of rows checked and resolved: the items to insert and what was left out."""

    items: list[dict[str, Any]] = field(default_factory=list)
    # Every usable row's account values, with or without a touchpoint today.
    accounts: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[RowRejection] = field(default_factory=list)
    read: int = 0
    no_touchpoint: int = 0
    already_queued: int = 0


@dataclass
class LoadRun:
    """The state one load carries from chunk to chunk (built once, never per row)."""

    campaign: Campaign
    source: str
    index: CadenceIndex
    now: dt.datetime
    queued_client_ids: set[str]
    # A warehouse reload counts clients already queued; an upload reports each as an error.
    reject_already_queued: bool
    seen_client_ids: set[str] = field(default_factory=set)
    # Per-load caches: a handful of segment spellings and at most 5 × 181 (segment, day) pairs.
    segments: dict[str, Segment | None] = field(default_factory=dict)
    step_values: dict[tuple[int, int], dict[str, Any] | None] = field(default_factory=dict)


# --- campaigns ---------------------------------------------------------------------------------


# --- one row ---------------------------------------------------------------------------------


def normalize_client_id(value: object) -> str:
    """The one spelling of a client id, shared by load, upload and revalidation."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = Decimal(_text(value))
    except InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def _amount(value: object) -> Decimal | None:
    """Amount due as Decimal(…, 2 places); None when empty; ValueError with the reason."""
    text = _text(value).replace("$", "").replace(",", "")
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount_due {_text(value)!r} is not an amount") from None
    if not amount.is_finite():
        raise ValueError(f"amount_due {_text(value)!r} is not an amount")
    if amount < 0:
        raise ValueError(f"amount_due {amount} is negative")
    # Before rounding: past Decimal's 28 digits, quantize raises InvalidOperation.
    if amount >= _AMOUNT_LIMIT:
        raise ValueError(f"amount_due {amount} is too large")
    rounded = amount.quantize(_CENT)
    if rounded != amount:
        raise ValueError(f"amount_due {amount} has more than 2 decimal places")
    return rounded


def _json_safe(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row as stored on a RejectedRow: JSON types only (warehouse rows carry Decimals, dates)."""
    safe: dict[str, Any] = {}
    for key, value in identity.without_secrets(dict(row)).items():
        if value is None or isinstance(value, (str, int, float, bool)):
            safe[str(key)] = value
        else:
            safe[str(key)] = str(value)
    return safe


_REQUIRED = frozenset(REQUIRED_COLUMNS)


def _step_values(run: LoadRun, segment: Segment, days: int) -> dict[str, Any] | None:
    """The item fields today's touchpoint decides, resolved once per (segment, day) per load."""
    key = (segment.pk, days)
    if key in run.step_values:
        return run.step_values[key]
    touchpoint = run.index.touchpoint(segment, days)
    values: dict[str, Any] | None = None
    if touchpoint is not None:
        step = touchpoint.step
        if step.action_type == ActionType.SMS:
            status, sms_status = QueueItem.Status.SMS_SCHEDULED, QueueItem.SmsStatus.SCHEDULED
        elif step.action_type == ActionType.BOTH:
            status, sms_status = QueueItem.Status.QUEUED, QueueItem.SmsStatus.PENDING
        else:
            status, sms_status = QueueItem.Status.QUEUED, QueueItem.SmsStatus.NONE
        values = {
            "campaign_id": run.campaign.pk,
            "source": run.source,
            "segment_id": segment.pk,
            "step_id": step.pk,
            "days_past_due": days,
            "phase": step.phase,
            "action_type": step.action_type,
            "team": touchpoint.team,
            "ring_group": touchpoint.ring_group,
            "transfer_number": touchpoint.transfer_number,
            "inbox_id": touchpoint.inbox_id,
            "voicemail_prompt": step.voicemail_prompt,
            "live_call_prompt": step.live_call_prompt,
            "status": status,
            "sms_status": sms_status,
        }
    run.step_values[key] = values
    return values


def _segment(run: LoadRun, name: str) -> Segment | None:
    if name not in run.segments:
        run.segments[name] = run.index.segment(name)
    return run.segments[name]


def _check_row(run: LoadRun, row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None] | str:
    """The account's values and the queue item's for one row (None when the client has no
    touchpoint today), or the reason it is rejected (str). Runs once per warehouse row, so it
    reads each value once and resolves segments and steps from per-load caches."""
    if not _REQUIRED <= row.keys():
        missing = [c for c in REQUIRED_COLUMNS if c not in row]
        return f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
    client_id = normalize_client_id(row["client_id"])
    name = _text(row["name"])
    segment_name = _text(row["segment"])
    warehouse_ring_group = _text(row["ring_group"])
    if not (client_id and name and segment_name and warehouse_ring_group and _text(row["phone"]) and _text(row["days_past_due"])):
        empty = [c for c in REQUIRED_COLUMNS if not _text(row[c])]
        return f"missing value{'s' if len(empty) > 1 else ''} for {', '.join(empty)}"
    email = _text(row.get("email"))
    payment_link = _text(row.get("payment_link"))
    if payment_link and not http.is_web_url(payment_link):
        # It would go into texts and to Grace: only a web address is a payment link. The client
        # still gets their touchpoint, with the portal's own signed link instead.
        payment_link = ""
    for column, value in (
        ("client_id", client_id),
        ("name", name),
        ("email", email),
        ("payment_link", payment_link),
        ("ring_group", warehouse_ring_group),
    ):
        if len(value) > _MAX_LENGTHS[column]:
            return f"{column} is longer than {_MAX_LENGTHS[column]} characters"

    try:
        phone = geo.phone_to_e164(row["phone"])
    except geo.GeoError as exc:
        return str(exc)

    segment = _segment(run, segment_name)
    if segment is None:
        return f"unknown segment {segment_name!r}"

    days = _whole_number(row["days_past_due"])
    if days is None:
        return f"days_past_due {_text(row['days_past_due'])!r} is not a whole number"
    if not 0 <= days <= MAX_CADENCE_DAY:
        return f"days_past_due {days} is outside 0–{MAX_CADENCE_DAY}"

    try:
        postal_code = geo.normalize_postal_code(row.get("postal_code"))
        state = geo.normalize_state(row.get("state")) or geo.state_for_postal_code(postal_code)
        zones = geo.time_zones_for_client(timezone=row.get("timezone"), state=state, phone=phone)
        amount_due = _amount(row.get("amount_due"))
    except ValueError as exc:  # GeoError is a ValueError
        return str(exc)
    timezones = ",".join(zones)
    if len(timezones) > _TIMEZONES_MAX_LENGTH:
        return f"timezone lists more zones than fit ({len(zones)})"

    account = {
        "client_id": client_id,
        "name": name,
        "phone": phone,
        "email": email,
        "segment_id": segment.pk,
        "days_past_due": days,
        "amount_due": amount_due,
        "timezones": timezones,
        "state": state,
        "postal_code": postal_code,
        "payment_link": payment_link,
        "owner": _text(row.get("owner"))[:_OWNER_MAX_LENGTH],
        "tier": _text(row.get("tier"))[:_TIER_MAX_LENGTH],
        "status": account_status(segment, days),
        # Hashed at once: the values themselves go no further than this function.
        "date_of_birth_hash": identity.date_of_birth_hash(row.get("date_of_birth")),
        "ssn_last4_hash": identity.ssn_last4_hash(row.get("ssn_last4")),
    }
    step_values = _step_values(run, segment, days)
    if step_values is None:
        return account, None
    item = step_values.copy()
    item.update(
        client_id=client_id,
        client_name=name,
        phone=phone,
        email=email,
        warehouse_ring_group=warehouse_ring_group,
        amount_due=amount_due,
        payment_link=payment_link,
        state=state,
        postal_code=postal_code,
        timezones=timezones,
    )
    return account, item


def account_status(segment: Segment, days: int) -> str:
    if days >= segment.cancellation_day:
        return Account.Status.CANCELLED
    if days >= segment.suspension_day:
        return Account.Status.SUSPENDED
    return Account.Status.ACTIVE


def queue_rows_prepare(*, run: LoadRun, rows: Iterable[tuple[int, Mapping[str, Any]]]) -> PreparedChunk:
    """Check and resolve numbered rows; nothing is written."""
    chunk = PreparedChunk()
    for row_number, row in rows:
        chunk.read += 1
        client_id = normalize_client_id(row.get("client_id"))
        extra = row.get(EXTRA_FIELDS)
        if extra is not None:
            chunk.rejections.append(
                RowRejection(row_number, client_id[:64], f"the line has {len(extra)} more field(s) than the header", _json_safe(row))
            )
            continue
        if client_id:
            if client_id in run.seen_client_ids:
                chunk.rejections.append(
                    RowRejection(row_number, client_id[:64], f"client_id {client_id!r} appears more than once", _json_safe(row))
                )
                continue
            run.seen_client_ids.add(client_id)
            if client_id in run.queued_client_ids:
                if run.reject_already_queued:
                    chunk.rejections.append(
                        RowRejection(row_number, client_id[:64], f"client_id {client_id!r} is already queued in this campaign", _json_safe(row))
                    )
                else:
                    chunk.already_queued += 1
                continue
        outcome = _check_row(run, row)
        if isinstance(outcome, str):
            chunk.rejections.append(RowRejection(row_number, client_id[:64], outcome, _json_safe(row)))
            continue
        account, item = outcome
        chunk.accounts.append(account)
        if item is None:
            chunk.no_touchpoint += 1
        else:
            chunk.items.append(item)
    return chunk


# --- writing ---------------------------------------------------------------------------------


def queue_item_copy_rows(
    items: list[dict[str, Any]], *, exclude: Collection[str] = ()
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Database column names and one tuple of values per item, complete, in COPY's order.

    Columns an item does not set take the field's default, computed once (Django's own: the
    declared one, '' for text, else None); JSON values are serialised for COPY's text format.
    Fields named in `exclude` are left out.
    """
    fields = [f for f in QueueItem._meta.concrete_fields if not f.primary_key and f.attname not in exclude]
    now = clock.now()
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    base: dict[str, Any] = {}
    for f in fields:
        value = now if f.attname in ("created_at", "status_changed_at") else f.get_default()
        base[f.attname] = json.dumps(value) if f.attname in json_fields else value
    row_of = operator.itemgetter(*(f.attname for f in fields))
    rows = []
    for item in items:
        values = base.copy()
        values.update(item)
        for name in json_fields.intersection(item):
            values[name] = json.dumps(item[name])
        rows.append(row_of(values))
    return [f.column for f in fields], rows


def _column(model: type[models.Model], field_name: str) -> str:
    """A field's quoted database column."""
    field = model._meta.get_field(field_name)
    if not isinstance(field, models.Field) or not field.column:
        raise TypeError(f"{model.__name__}.{field_name} is not a column")
    return connection.ops.quote_name(field.column)


# --- PostgreSQL: one staging stream per chunk --------------------------------------------------
#
# A chunk's accounts and items go to PostgreSQL in one COPY into one temporary table, one row
# per client: the account's fields, then the item fields that differ from client to client (an
# item repeats most of its account: those it takes from the account's columns). Two INSERT ...
# SELECT statements then write the accounts and the items from it; what every item shares (its
# defaults) is a parameter of the statement, not a value on every row. Each client's values
# cross the wire, and are parsed, once.

# Account fields an item also carries, and the item field that carries each.
ACCOUNT_ITEM_FIELDS = {
    "client_id": "client_id", "name": "client_name", "phone": "phone", "email": "email", "segment_id": "segment_id",
    "days_past_due": "days_past_due", "amount_due": "amount_due", "timezones": "timezones", "state": "state",
    "postal_code": "postal_code", "payment_link": "payment_link",
}  # fmt: skip
_ITEM_FROM_ACCOUNT = {item_name: name for name, item_name in ACCOUNT_ITEM_FIELDS.items()}
STAGED_ITEM = "staged_item"


def _model_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return field


def _account_field(name: str) -> models.Field[Any, Any]:
    return _model_field(Account, "segment" if name == "segment_id" else name)


@dataclass
class _Staging:
    """The staging table's layout for one chunk."""

    item_names: list[str]  # per-client item fields, after the account's
    item_fields: list[models.Field[Any, Any]]
    constants: dict[str, Any]  # every other item column: its value for all items, ready to bind


def _staging_layout(items: list[dict[str, Any]]) -> _Staging:
    fields = {f.attname: f for f in QueueItem._meta.concrete_fields if not f.primary_key}
    keys: set[str] = set()
    for item in items:
        keys.update(item)
    unknown = keys - fields.keys()
    if unknown:
        raise TypeError(f"not queue item fields: {', '.join(sorted(unknown))}")
    names = [n for n in fields if n in keys and n not in _ITEM_FROM_ACCOUNT and n not in STEP_TEXT_FIELDS]
    now = clock.now()
    constants = {
        n: f.get_db_prep_save(now if n in ("created_at", "status_changed_at") else f.get_default(), connection)
        for n, f in fields.items()
        if n not in keys and n not in _ITEM_FROM_ACCOUNT and n not in STEP_TEXT_FIELDS
    }
    return _Staging(item_names=names, item_fields=[fields[n] for n in names], constants=constants)


def _postgres_stage(accounts: list[dict[str, Any]], items: list[dict[str, Any]]) -> _Staging:
    """COPY a chunk's accounts and items into pg_temp.load_staging."""
    qn = connection.ops.quote_name
    layout = _staging_layout(items)
    account_of = operator.itemgetter(*ACCOUNT_FIELDS)
    json_names = {n for n, f in zip(layout.item_names, layout.item_fields) if f.get_internal_type() == "JSONField"}
    defaults = {n: f.get_default() for n, f in zip(layout.item_names, layout.item_fields)}
    item_of = operator.itemgetter(*layout.item_names) if layout.item_names else (lambda item: ())
    # Items of a load all set the same fields: then one C-level getter reads a row's values.
    uniform = bool(items) and all(item.keys() == items[0].keys() for item in items)
    no_item = tuple(defaults[n] for n in layout.item_names) + (False,)

    def item_values(item: dict[str, Any]) -> tuple[Any, ...]:
        if uniform and not json_names:
            values = item_of(item)
            return (*(values if isinstance(values, tuple) else (values,)), True)
        return (*(json.dumps(item.get(n, defaults[n])) if n in json_names else item.get(n, defaults[n]) for n in layout.item_names), True)

    by_client = {item["client_id"]: item for item in items}
    rows: list[tuple[Any, ...]] = []
    complete = frozenset(ACCOUNT_FIELDS)
    for account in accounts:
        item = by_client.pop(account["client_id"], None)
        values = account_of(account) if complete <= account.keys() else tuple(account.get(n, "") for n in ACCOUNT_FIELDS)
        rows.append((True, *values, *(no_item if item is None else item_values(item))))
    for item in by_client.values():  # items written without their accounts
        account = {name: item.get(item_name) for name, item_name in ACCOUNT_ITEM_FIELDS.items()}
        rows.append((False, *(account.get(name) for name in ACCOUNT_FIELDS), *item_values(item)))

    definitions = ["staged_account boolean"]
    definitions += [f"{qn(f'account_{name}')} {_account_field(name).db_type(connection)}" for name in ACCOUNT_FIELDS]
    definitions += [f"{qn(f.column)} {f.db_type(connection)}" for f in layout.item_fields]
    definitions.append(f"{STAGED_ITEM} boolean")
    with connection.cursor() as cursor:
        # In the connection's own schema, so concurrent writers never share it.
        cursor.execute("DROP TABLE IF EXISTS pg_temp.load_staging")
        cursor.execute(f"CREATE TEMPORARY TABLE load_staging ({', '.join(definitions)})")
        with connection.wrap_database_errors, cursor.cursor.copy("COPY load_staging FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return layout


def _postgres_accounts_from_staging(*, now: dt.datetime, campaign_date: dt.date) -> None:
    qn = connection.ops.quote_name
    table = qn(Account._meta.db_table)
    phones = qn(AccountPhone._meta.db_table)
    targets = [_account_field(name).column for name in ACCOUNT_FIELDS]
    sources = ", ".join(f"s.{qn(f'account_{name}')}" for name in ACCOUNT_FIELDS)
    quoted = ", ".join(qn(c) for c in targets)
    updates = ", ".join(
        f"{qn(c)} = CASE WHEN EXCLUDED.{qn(c)} = '' THEN {table}.{qn(c)} ELSE EXCLUDED.{qn(c)} END"
        if c in KEPT_WHEN_EMPTY
        else f"{qn(c)} = EXCLUDED.{qn(c)}"
        for c in [*targets, "last_seen_at", "last_campaign_date"]
        if c != "client_id"
    )
    with connection.cursor() as cursor:
        # The number an account is about to lose, before the upsert overwrites it.
        cursor.execute(
            f"INSERT INTO {phones} (account_id, phone, first_seen_at, last_seen_at) "
            f"SELECT a.id, a.phone, a.first_seen_at, a.last_seen_at FROM load_staging AS s "
            f"JOIN {table} AS a ON a.client_id = s.account_client_id WHERE s.staged_account AND a.phone <> s.account_phone "
            f"ON CONFLICT (account_id, phone) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at"
        )
        cursor.execute(
            f"INSERT INTO {table} ({quoted}, first_seen_at, last_seen_at, last_campaign_date) "
            f"SELECT {sources}, %s, %s, %s FROM load_staging AS s WHERE s.staged_account "
            f"ON CONFLICT (client_id) DO UPDATE SET {updates}",
            [now, now, campaign_date],
        )


def _postgres_items_from_staging(layout: _Staging) -> int:
    """One INSERT ... SELECT ... ON CONFLICT DO NOTHING of the staged items; how many went in.

    The database skips the clients already queued (idempotent, with an exact count) and takes
    each step's prompts — about a kilobyte of text, the same for every client on the step —
    from the cadence step itself instead of receiving them once per client.
    """
    qn = connection.ops.quote_name
    table = qn(QueueItem._meta.db_table)
    targets: list[str] = []
    sources: list[str] = []
    for item_name, name in _ITEM_FROM_ACCOUNT.items():
        targets.append(_column(QueueItem, item_name))
        sources.append(f"staged.{qn(f'account_{name}')}")
    for f in layout.item_fields:
        targets.append(qn(f.column))
        sources.append(f"staged.{qn(f.column)}")
    for name in layout.constants:
        targets.append(_column(QueueItem, name))
        sources.append("%s")
    for name in STEP_TEXT_FIELDS:
        targets.append(_column(QueueItem, name))
        sources.append(f"step.{_column(CadenceStep, name)}")
    step_key = _column(QueueItem, "step")
    unique = ", ".join(_column(QueueItem, f) for f in ("campaign", "client_id"))
    with connection.cursor() as cursor:
        # LEFT JOIN: a step deleted meanwhile leaves NULL prompts, which the NOT NULL columns
        # refuse loudly rather than silently dropping the client.
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(targets)}) "
            f"SELECT {', '.join(sources)} FROM load_staging AS staged "
            f"LEFT JOIN {qn(CadenceStep._meta.db_table)} AS step ON step.{qn('id')} = staged.{step_key} "
            f"WHERE staged.{STAGED_ITEM} "
            f"ON CONFLICT ({unique}) DO NOTHING",
            list(layout.constants.values()),
        )
        return cursor.rowcount


def _postgres_write(
    *,
    accounts: list[dict[str, Any]],
    items: list[dict[str, Any]],
    now: dt.datetime | None = None,
    campaign_date: dt.date | None = None,
) -> int:
    """A chunk's accounts and items through one staging table; returns how many items went in.
    `now` and `campaign_date` (first and last seen, last campaign) are needed with accounts."""
    layout = _postgres_stage(accounts, items)
    if accounts:
        if now is None or campaign_date is None:
            raise TypeError("accounts need now and campaign_date")
        _postgres_accounts_from_staging(now=now, campaign_date=campaign_date)
    inserted = _postgres_items_from_staging(layout) if items else 0
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE pg_temp.load_staging")
    return inserted


def _sqlite_insert_items(campaign_id: int, items: list[dict[str, Any]]) -> int:
    """One INSERT OR IGNORE executed for every item (sqlite3's executemany runs it in C).

    The ORM would split the rows into statements of 999 parameters and prepare each value in
    Python; this binds the same complete rows COPY uses, with datetimes adapted the way Django
    stores them in SQLite.
    """
    columns, complete = queue_item_copy_rows(items)
    fields = [f for f in QueueItem._meta.concrete_fields if not f.primary_key]
    datetime_positions = [i for i, f in enumerate(fields) if f.get_internal_type() == "DateTimeField"]
    adapt = connection.ops.adapt_datetimefield_value
    rows: list[list[Any]] = []
    for row in complete:
        values = list(row)
        for i in datetime_positions:
            values[i] = adapt(values[i])
        rows.append(values)
    table = connection.ops.quote_name(QueueItem._meta.db_table)
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    placeholders = ", ".join(["%s"] * len(columns))
    before = QueueItem.objects.filter(campaign_id=campaign_id).count()
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT OR IGNORE INTO {table} ({quoted}) VALUES ({placeholders})", rows)
    return QueueItem.objects.filter(campaign_id=campaign_id).count() - before


def queue_items_insert(*, campaign_id: int, items: list[dict[str, Any]]) -> int:
    """Insert prepared items, skipping clients the campaign already has; returns how many went in.

    Call inside a transaction.
    """
    if not items:
        return 0
    if connection.vendor == "postgresql":
        return _postgres_write(accounts=[], items=items)
    if connection.vendor == "sqlite":
        return _sqlite_insert_items(campaign_id, items)
    before = QueueItem.objects.filter(campaign_id=campaign_id).count()
    QueueItem.objects.bulk_create([QueueItem(**values) for values in items], batch_size=BULK_BATCH_SIZE, ignore_conflicts=True)
    return QueueItem.objects.filter(campaign_id=campaign_id).count() - before


# Account columns a load writes; the rest (first seen) are set once, when the client is new.
ACCOUNT_FIELDS = (
    "client_id", "name", "phone", "email", "segment_id", "days_past_due", "amount_due", "timezones", "state",
    "postal_code", "payment_link", "owner", "tier", "status", "date_of_birth_hash", "ssn_last4_hash",
)  # fmt: skip
# A row without an identity value (a CSV upload, a query that stopped returning the column)
# leaves the hash an earlier load stored.
KEPT_WHEN_EMPTY = frozenset({"date_of_birth_hash", "ssn_last4_hash"})


def accounts_upsert(*, accounts: list[dict[str, Any]], now: dt.datetime, campaign_date: dt.date) -> None:
    """Create or update one account per row. The account's current number is on the account;
    a number it had before is kept among its phones when a row brings a new one, so an inbound
    caller is recognised on every number the client was reached at. On PostgreSQL through the
    load's staging table (COPY, then INSERT ... ON CONFLICT DO UPDATE); on SQLite an upsert
    executed per row in C. Call inside a transaction."""
    if not accounts:
        return
    if connection.vendor == "postgresql":
        _postgres_write(accounts=accounts, items=[], now=now, campaign_date=campaign_date)
        return
    qn = connection.ops.quote_name
    table = qn(Account._meta.db_table)
    phones = qn(AccountPhone._meta.db_table)
    columns = [_column_name(Account, "segment" if name == "segment_id" else name) for name in ACCOUNT_FIELDS]
    quoted = ", ".join(qn(c) for c in columns)
    updates = ", ".join(
        f"{qn(c)} = CASE WHEN EXCLUDED.{qn(c)} = '' THEN {table}.{qn(c)} ELSE EXCLUDED.{qn(c)} END"
        if c in KEPT_WHEN_EMPTY
        else f"{qn(c)} = EXCLUDED.{qn(c)}"
        for c in columns
        if c != "client_id"
    )
    seen = f"{qn('last_seen_at')} = EXCLUDED.{qn('last_seen_at')}, {qn('last_campaign_date')} = EXCLUDED.{qn('last_campaign_date')}"
    if connection.vendor == "sqlite":
        at = connection.ops.adapt_datetimefield_value(now)
        day = connection.ops.adapt_datefield_value(campaign_date)
        rows = [[*(_sqlite_value(account.get(name, "")) for name in ACCOUNT_FIELDS), at, at, day] for account in accounts]
        placeholders = ", ".join(["%s"] * (len(columns) + 3))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {phones} (account_id, phone, first_seen_at, last_seen_at) "
                f"SELECT id, phone, first_seen_at, last_seen_at FROM {table} WHERE client_id = %s AND phone <> %s "
                f"ON CONFLICT (account_id, phone) DO UPDATE SET last_seen_at = excluded.last_seen_at",
                [[account["client_id"], account["phone"]] for account in accounts],
            )
            cursor.executemany(
                f"INSERT INTO {table} ({quoted}, first_seen_at, last_seen_at, last_campaign_date) VALUES ({placeholders}) "
                f"ON CONFLICT (client_id) DO UPDATE SET {updates}, {seen}",
                rows,
            )
        return
    existing = dict(
        Account.objects.filter(client_id__in=[a["client_id"] for a in accounts]).values_list("client_id", "pk")
    )
    old_phones = dict(Account.objects.filter(pk__in=existing.values()).values_list("pk", "phone"))
    AccountPhone.objects.bulk_create(
        [
            AccountPhone(account_id=existing[a["client_id"]], phone=old_phones[existing[a["client_id"]]], first_seen_at=now, last_seen_at=now)
            for a in accounts
            if a["client_id"] in existing and old_phones[existing[a["client_id"]]] != a["phone"]
        ],
        ignore_conflicts=True,
    )
    Account.objects.bulk_create(
        [Account(**account, first_seen_at=now, last_seen_at=now, last_campaign_date=campaign_date) for account in accounts],
        update_conflicts=True,
        unique_fields=["client_id"],
        update_fields=["segment" if name == "segment_id" else name for name in ACCOUNT_FIELDS if name != "client_id"]
        + ["last_seen_at", "last_campaign_date"],
    )


def _column_name(model: type[models.Model], field_name: str) -> str:
    field = model._meta.get_field(field_name)
    if not isinstance(field, models.Field) or not field.column:
        raise TypeError(f"{model.__name__}.{field_name} is not a column")
    return field.column


def _sqlite_value(value: Any) -> Any:
    # sqlite3 takes no Decimal: Django stores decimals in SQLite as text.
    return str(value) if isinstance(value, Decimal) else value


def _write_chunk(*, run: LoadRun, chunk: PreparedChunk) -> int:
    """Items, rejected rows and progress counters of one chunk, in one transaction."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            inserted = _postgres_write(accounts=chunk.accounts, items=chunk.items, now=run.now, campaign_date=run.campaign.date)
        else:
            accounts_upsert(accounts=chunk.accounts, now=run.now, campaign_date=run.campaign.date)
            inserted = queue_items_insert(campaign_id=run.campaign.pk, items=chunk.items)
        # Lost to a concurrent writer between our read of the campaign's clients and the insert.
        raced = len(chunk.items) - inserted
        RejectedRow.objects.bulk_create(
            [
                RejectedRow(
                    campaign_id=run.campaign.pk,
                    source=run.source,
                    row_number=r.row_number,
                    client_id=r.client_id,
                    reason=r.reason[:300],
                    row=r.row,
                )
                for r in chunk.rejections
            ],
            batch_size=BULK_BATCH_SIZE,
        )
        if run.source == SOURCE_WAREHOUSE:
            Campaign.objects.filter(pk=run.campaign.pk).update(
                rows_read=F("rows_read") + chunk.read,
                rows_inserted=F("rows_inserted") + inserted,
                rows_rejected=F("rows_rejected") + len(chunk.rejections),
                rows_no_touchpoint=F("rows_no_touchpoint") + chunk.no_touchpoint,
                rows_already_queued=F("rows_already_queued") + chunk.already_queued + raced,
            )
    chunk.already_queued += raced
    return inserted


def load_run_create(*, campaign: Campaign, source: str, now: dt.datetime) -> LoadRun:
    """The state of one load: the cadence index and the clients the campaign already has."""
    return LoadRun(
        campaign=campaign,
        source=source,
        index=cadence_index(),
        now=now,
        queued_client_ids=set(QueueItem.objects.filter(campaign=campaign).values_list("client_id", flat=True)),
        reject_already_queued=source != SOURCE_WAREHOUSE,
    )


def _account(
    progress: LoadProgress, chunk: PreparedChunk, inserted: int, on_progress: Callable[[LoadProgress], None] | None
) -> None:
    progress.read += chunk.read
    progress.inserted += inserted
    progress.rejected += len(chunk.rejections)
    if progress.rejections is not None:
        progress.rejections.extend(chunk.rejections)
    progress.no_touchpoint += chunk.no_touchpoint
    progress.already_queued += chunk.already_queued
    if on_progress is not None:
        on_progress(progress)


def _write_chunk_in_thread(*, run: LoadRun, chunk: PreparedChunk) -> int:
    """`_write_chunk` on a writer thread's own connection, closed when the chunk is written (a
    connection costs milliseconds; a chunk's COPY, a good part of a second)."""
    try:
        return _write_chunk(run=run, chunk=chunk)
    finally:
        connection.close()


def _load_chunks(
    *,
    run: LoadRun,
    chunks: Iterable[Sequence[tuple[int, Mapping[str, Any]]]],
    progress: LoadProgress,
    on_progress: Callable[[LoadProgress], None] | None,
) -> None:
    """Check and write chunk after chunk.

    On PostgreSQL, outside a caller's transaction, WRITER_THREADS threads (each with its own
    connection and its own transaction per chunk) write earlier chunks while this thread reads
    and checks the next one: the database's share of the work (parsing the COPY, maintaining
    the indexes) runs in parallel with Python's and with itself. At most WRITER_THREADS chunks
    wait, so memory stays bounded. Results are counted in chunk order. Inside a caller's
    transaction everything must go through the caller's connection, so chunks are written in turn.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        for numbered in chunks:
            chunk = queue_rows_prepare(run=run, rows=numbered)
            _account(progress, chunk, _write_chunk(run=run, chunk=chunk), on_progress)
        return
    in_flight: deque[tuple[Future[int], PreparedChunk]] = deque()
    with ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="queue-load-writer") as writers:
        try:
            for numbered in chunks:
                chunk = queue_rows_prepare(run=run, rows=numbered)
                while len(in_flight) >= WRITER_THREADS:
                    future, written = in_flight.popleft()
                    _account(progress, written, future.result(), on_progress)
                in_flight.append((writers.submit(_write_chunk_in_thread, run=run, chunk=chunk), chunk))
            while in_flight:
                future, written = in_flight.popleft()
                _account(progress, written, future.result(), on_progress)
        finally:
            # Something failed (the warehouse mid-stream, or one write): the writes already under
            # way finish, each transaction keeping its items and counters together, and what they
            # wrote is counted.
            while in_flight:
                future, written = in_flight.popleft()
                try:
                    _account(progress, written, future.result(), on_progress)
                except Exception:
                    log.exception("queue load: writing a chunk failed", extra={"campaign_id": run.campaign.pk})


# --- the warehouse load -----------------------------------------------------------------------


def _subquery(sql: str, select: str) -> str:
    body = sql.strip().rstrip(";").strip()
    # Newlines keep a trailing `-- comment` in the stored query from swallowing the parenthesis.
    return f"SELECT {select} FROM (\n{body}\n) AS queue_rows"


def queue_count(*, sql: str | None = None) -> int | None:
    """How many rows the queue query returns (for a progress bar); None if the warehouse cannot say."""
    query = sql if sql is not None else DialerSettings.load().queue_sql
    try:
        for chunk in warehouse.iter_query(_subquery(query, "COUNT(*) AS row_count"), chunk_size=1):
            return int(chunk[0]["row_count"])
    except (IntegrationError, KeyError, TypeError, ValueError):
        log.info("queue row count unavailable", exc_info=True)
    return None


def _numbered_warehouse_chunks(sql: str, chunk_size: int) -> Iterator[Sequence[tuple[int, Mapping[str, Any]]]]:
    row_number = 0
    checked = False
    for rows in warehouse.iter_query(sql, chunk_size=chunk_size):
        if not checked and rows:
            missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
            if missing:
                # Every row would be rejected for the same reason: refuse the query instead,
                # as the warehouse would refuse a broken one.
                raise IntegrationError(
                    f"the queue query does not return the required column(s) {', '.join(missing)}",
                    permanent=True,
                    vendor=warehouse.VENDOR,
                )
            checked = True
        numbered: list[tuple[int, Mapping[str, Any]]] = []
        for row in rows:
            row_number += 1
            numbered.append((row_number, row))
        yield numbered


def queue_load(
    *,
    campaign: Campaign,
    now: dt.datetime | None = None,
    sql: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Callable[[LoadProgress], None] | None = None,
) -> LoadProgress:
    """Load the campaign's queue from the warehouse (the stored queue SQL unless `sql` is given).

    Idempotent: clients already queued are counted, not inserted again. On a warehouse error the
    message is stored in `campaign.load_error`, the items already inserted stay, and the
    IntegrationError propagates (the caller decides what the campaign does next); a retry
    continues where this one stopped.
    """
    now = now or clock.now()
    query = sql if sql is not None else DialerSettings.load().queue_sql
    campaign.refresh_from_db()
    if campaign.status not in LOADABLE_STATUSES:
        raise QueueLoadError(f"{campaign} is {campaign.get_status_display().lower()}; it takes no more queue items.")
    with transaction.atomic():
        Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.DRAFT).update(status=Campaign.Status.LOADING)
        # Each run reports on the whole query again: the previous run's rejected rows are
        # replaced, not accumulated, and the counters start over.
        RejectedRow.objects.filter(campaign=campaign, source=SOURCE_WAREHOUSE).delete()
        Campaign.objects.filter(pk=campaign.pk).update(
            load_started_at=clock.now(),
            load_finished_at=None,
            load_error="",
            rows_read=0,
            rows_inserted=0,
            rows_rejected=0,
            rows_no_touchpoint=0,
            rows_already_queued=0,
        )
    run = load_run_create(campaign=campaign, source=SOURCE_WAREHOUSE, now=now)
    progress = LoadProgress()
    if on_progress is not None:
        progress.total = queue_count(sql=query)
        on_progress(progress)
    log.info("queue load started", extra={"campaign_id": campaign.pk, "already_queued": len(run.queued_client_ids)})
    try:
        _load_chunks(run=run, chunks=_numbered_warehouse_chunks(query, chunk_size), progress=progress, on_progress=on_progress)
    except IntegrationError as exc:
        Campaign.objects.filter(pk=campaign.pk).update(load_error=str(exc))
        campaign.refresh_from_db()
        log.warning("queue load failed", extra={"campaign_id": campaign.pk, "error": str(exc), **progress.log_fields()})
        raise
    Campaign.objects.filter(pk=campaign.pk).update(load_finished_at=clock.now())
    campaign.refresh_from_db()
    log.info("queue load finished", extra={"campaign_id": campaign.pk, **progress.log_fields()})
    return progress


# --- CSV upload --------------------------------------------------------------------------------


def _csv_rows(data: bytes) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Header and numbered rows of a whole CSV file, or CsvFileError saying why it is not one."""
    if not data.strip():
        raise CsvFileError("The file is empty.")
    if b"\x00" in data:
        raise CsvFileError("The file contains binary data; it is not a CSV file.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvFileError("The file is not UTF-8 text; save it as CSV (UTF-8) and upload it again.") from None
    if not text.strip():
        raise CsvFileError("The file is empty.")  # a byte-order mark and nothing else
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header_row = next(reader, [])
        header = [h.strip().lower() for h in header_row]
        if len(header) < 2:
            raise CsvFileError("The first line is not a CSV header (expected comma-separated column names).")
        duplicated = sorted({h for h in header if h and header.count(h) > 1})
        if duplicated:
            raise CsvFileError(f"The header repeats column(s): {', '.join(duplicated)}.")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise CsvFileError(f"The file lacks the required column(s): {', '.join(missing)}.")
        rows: list[tuple[int, dict[str, Any]]] = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            row: dict[str, Any] = {}
            for name, value in zip(header, values):
                if name:
                    row[name] = value
            if len(values) > len(header):
                row[EXTRA_FIELDS] = values[len(header):]
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise CsvFileError(f"Line {reader.line_num}: {exc}; the file is not valid CSV.") from None
    return header, rows


def queue_upload_csv(
    *,
    campaign: Campaign,
    upload: IO[bytes],
    filename: str,
    now: dt.datetime | None = None,
    source: str = SOURCE_CSV,
    keep_rejections: bool = False,
) -> LoadProgress:
    """Queue the clients of an uploaded CSV file (same columns, checks and resolution as the load).

    A file that is not CSV, or lacks a required column, raises CsvFileError and loads nothing.
    Each unusable row is stored as a RejectedRow (source "csv", or "sftp" for a file fetched from
    an intake folder) with its line number and reason; with `keep_rejections` the result lists
    them too.
    """
    now = now or clock.now()
    campaign.refresh_from_db()
    if campaign.status not in LOADABLE_STATUSES:
        raise CsvFileError(f"{campaign} is {campaign.get_status_display().lower()}; it takes no more queue items.")
    if not filename.lower().endswith(".csv"):
        raise CsvFileError(f"{filename!r} is not a CSV file (expected a .csv file).")
    data = upload.read(CSV_MAX_BYTES + 1)
    if len(data) > CSV_MAX_BYTES:
        raise CsvFileError(f"The file is larger than {CSV_MAX_BYTES // (1024 * 1024)} MB; load it through the warehouse query.")
    _, rows = _csv_rows(data)
    run = load_run_create(campaign=campaign, source=source, now=now)
    progress = LoadProgress(total=len(rows), rejections=[] if keep_rejections else None)
    chunks = (rows[i : i + CHUNK_SIZE] for i in range(0, len(rows), CHUNK_SIZE))
    _load_chunks(run=run, chunks=chunks, progress=progress, on_progress=None)
    log.info("queue csv uploaded", extra={"campaign_id": campaign.pk, "source": source, **progress.log_fields()})
    return progress


# --- revalidation ------------------------------------------------------------------------------


def _eligible_client_ids(sql: str) -> set[str]:
    ids: set[str] = set()
    for rows in warehouse.iter_query(_subquery(sql, "client_id"), chunk_size=CHUNK_SIZE):
        for row in rows:
            client_id = normalize_client_id(row.get("client_id"))
            if client_id:
                ids.add(client_id)
    return ids


def _mark_ineligible(*, campaign: Campaign, eligible: set[str], now: dt.datetime) -> int:
    """One UPDATE against a temporary table of eligible ids; the counter moves in the same transaction."""
    table = connection.ops.quote_name(QueueItem._meta.db_table)
    detail = json.dumps({"reason": "no longer returned by the queue query", "revalidated_at": now.isoformat()})
    params: list[Any] = [
        QueueItem.Status.INELIGIBLE,
        connection.ops.adapt_datetimefield_value(now),
        "ineligible",
        detail,
        QueueItem.SmsStatus.PENDING,
        QueueItem.SmsStatus.SCHEDULED,
        QueueItem.SmsStatus.SKIPPED,
        campaign.pk,
        SOURCE_WAREHOUSE,
        *REVALIDATED_STATUSES,
    ]
    postgres = connection.vendor == "postgresql"
    update = f"""
        UPDATE {table} SET
            status = %s, status_changed_at = %s, skip_reason = %s, skip_detail = %s{'::jsonb' if postgres else ''},
            sms_status = CASE WHEN sms_status IN (%s, %s) THEN %s ELSE sms_status END
        WHERE campaign_id = %s AND source = %s AND status IN (%s, %s)
          AND NOT EXISTS (SELECT 1 FROM queue_eligible e WHERE e.client_id = {table}.client_id)
    """
    # The temporary table lives in this connection's own schema (pg_temp / temp), so two
    # workers revalidating at once never see each other's ids. It is dropped explicitly
    # because the connection outlives the transaction.
    temp_table = "pg_temp.queue_eligible" if postgres else "temp.queue_eligible"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {temp_table}")
        if postgres:
            cursor.execute("CREATE TEMPORARY TABLE queue_eligible (client_id varchar(64) PRIMARY KEY)")
            with connection.wrap_database_errors:
                with cursor.cursor.copy("COPY queue_eligible (client_id) FROM STDIN") as copy:
                    for client_id in eligible:
                        copy.write_row((client_id,))
            # Fresh statistics let the planner pick a hash anti-join over the whole campaign.
            cursor.execute("ANALYZE queue_eligible")
        else:
            cursor.execute("CREATE TEMPORARY TABLE queue_eligible (client_id TEXT PRIMARY KEY)")
            cursor.executemany("INSERT INTO queue_eligible (client_id) VALUES (%s)", [(c,) for c in eligible])
        cursor.execute(update, params)
        marked = cursor.rowcount
        cursor.execute(f"DROP TABLE {temp_table}")
        Campaign.objects.filter(pk=campaign.pk).update(ineligible=F("ineligible") + marked, last_revalidated_at=now)
        if marked:
            # The query no longer returns them: they resolved their balance (the warehouse says so).
            Account.objects.filter(
                client_id__in=QueueItem.objects.filter(campaign=campaign, status=QueueItem.Status.INELIGIBLE).values("client_id")
            ).exclude(status=Account.Status.RESOLVED).update(status=Account.Status.RESOLVED)
    return marked


def queue_revalidate(*, campaign: Campaign, now: dt.datetime | None = None, sql: str | None = None) -> int:
    """Mark queued items whose client the queue query no longer returns as ineligible.

    Only items not yet released or sent (queued, SMS scheduled) that came from the warehouse
    are touched. Returns how many were marked. An empty result is treated as a warehouse
    problem (an alert, nothing marked), never as every client having paid at once.
    """
    now = now or clock.now()
    query = sql if sql is not None else DialerSettings.load().queue_sql
    eligible = _eligible_client_ids(query)
    if not eligible:
        pending = QueueItem.objects.filter(
            campaign=campaign, source=SOURCE_WAREHOUSE, status__in=REVALIDATED_STATUSES
        ).exists()
        if pending:
            alert_raise(
                campaign=campaign, source="revalidation", level=Alert.Level.WARNING,
                message="The queue query returned no clients during revalidation; nothing was marked ineligible.",
            )  # fmt: skip
            log.warning("revalidation skipped: empty queue query result", extra={"campaign_id": campaign.pk})
        return 0
    marked = _mark_ineligible(campaign=campaign, eligible=eligible, now=now)
    log.info("queue revalidated", extra={"campaign_id": campaign.pk, "eligible": len(eligible), "marked_ineligible": marked})
    return marked


def _revalidation_schedule_name(campaign: Campaign) -> str:
    return f"revalidate-campaign-{campaign.pk}"


def revalidation_schedule_install(*, campaign: Campaign, now: dt.datetime | None = None) -> Schedule:
    """The django-q2 schedule that revalidates this campaign every configured interval (idempotent)."""
    now = now or clock.now()
    minutes = DialerSettings.load().revalidation_interval_minutes
    schedule, _ = Schedule.objects.update_or_create(
        name=_revalidation_schedule_name(campaign),
        defaults={
            "func": "campaigns.tasks.queue_revalidate_task",
            "args": repr((campaign.pk,)),
            "schedule_type": Schedule.MINUTES,
            "minutes": minutes,
            "repeats": -1,
            "next_run": now + dt.timedelta(minutes=minutes),
        },
    )
    log.info("revalidation scheduled", extra={"campaign_id": campaign.pk, "minutes": minutes})
    return schedule


def revalidation_schedule_remove(*, campaign: Campaign) -> int:
    """Remove the campaign's revalidation schedule; returns how many schedules were deleted."""
    deleted, _ = Schedule.objects.filter(name=_revalidation_schedule_name(campaign)).delete()
    return deleted
