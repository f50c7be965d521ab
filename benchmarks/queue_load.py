"""Queue load against the seed's approach and against the COPY floor; revalidation of a full day.

The warehouse is a temporary SQLite file with BENCH_CLIENTS synthetic clients (default 100,000)
from the sample generator. Each client's days past due is moved onto a day its segment has a
touchpoint, so every row is queued — the heaviest load for the same number of rows.

    (a) ours     `queue_load` end to end — warehouse query, checks, E.164, cadence resolution,
                 time zones, insert, rejected rows, progress counters — in a child process,
                 whose peak RSS (VmHWM from /proc/self/status) is the memory figure.
    (b) baseline the same prepared rows written by the ORM 100 clients at a time, each batch in
                 its own transaction: the clients' accounts (`bulk_create` upserting on the client
                 id) and their items (`bulk_create(batch_size=100)` — what the seed's Prisma
                 loader does with `createMany`). Timed: building the model instances from the
                 prepared rows and the writes; not timed (in the baseline's favour): reading the
                 warehouse, the checks, E.164, resolution and time zones.
    (c) COPY     the same rows, as ready-made tuples, through one PostgreSQL `COPY` in one
                 transaction (the floor; skipped on SQLite). Only the COPY itself is timed.

Revalidation: the 100k queued items of (a) against a warehouse that still returns 95% of them.

Each of (a), (b) and (c) starts from the same table state: the benchmark's earlier rows deleted
and the table vacuumed. Targets: ours ≥ 5× the baseline's rows/s, ours within 1.5× of COPY's time (accounts included), peak RSS < 500 MB,
revalidation < 2 s. The campaigns it creates (dates in 2099) and their accounts are deleted at the end.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.test.utils import override_settings

from cadences.models import DEFAULT_QUEUE_SQL, CadenceStep
from campaigns.models import Account, Campaign, QueueItem, RejectedRow
from campaigns.queue import load as queue
from integrations.warehouse import client as warehouse
from integrations.warehouse import sample
from campaigns.lifecycle import campaign as lifecycle

RSS_TARGET_MB = 500
BASELINE_RATIO_TARGET = 5.0
COPY_TIME_RATIO_TARGET = 1.5
REVALIDATION_TARGET_S = 2.0
ELIGIBLE_SHARE = 0.95
BASELINE_BATCH = 100
ROOT = Path(__file__).resolve().parent.parent
DATES = {"ours": dt.date(2099, 12, 1), "baseline": dt.date(2099, 12, 2), "copy": dt.date(2099, 12, 3)}


def _clients() -> int:
    return int(os.environ.get("BENCH_CLIENTS", "100000"))


def _peak_rss_mb() -> float:
    """This process's peak resident set size.

    VmHWM is the high-water mark of this process's own memory; getrusage's ru_maxrss is not
    (on Linux it keeps the parent's peak across fork and exec, so a child started by a big
    parent would report the parent's size).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # No /proc: ru_maxrss, in bytes on macOS and kilobytes elsewhere.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _warehouse_rows(clients: int) -> Iterator[dict[str, Any]]:
    step_days: dict[str, list[int]] = {}
    for segment_name, day in CadenceStep.objects.filter(active=True).values_list("segment__name", "day"):
        step_days.setdefault(segment_name, []).append(day)
    for days in step_days.values():
        days.sort()
    for row, _ in sample.sample_rows(clients=clients, seed=7, dirty=False):
        days = step_days[row["segment"]]
        at = bisect.bisect_left(days, row["days_past_due"])
        row["days_past_due"] = days[min(at, len(days) - 1)]
        row["balance_resolved"] = 0
        yield row


def _build_warehouse(clients: int) -> float:
    started = time.perf_counter()
    warehouse.drop_table(sample.QUEUE_TABLE)
    warehouse.ensure_table(sample.QUEUE_TABLE, sample.QUEUE_COLUMNS, key=sample.QUEUE_KEY)
    chunk: list[dict[str, Any]] = []
    for row in _warehouse_rows(clients):
        chunk.append(row)
        if len(chunk) == 20_000:
            warehouse.write_rows(sample.QUEUE_TABLE, chunk, key=sample.QUEUE_KEY, columns=list(sample.QUEUE_COLUMNS))
            chunk = []
    if chunk:
        warehouse.write_rows(sample.QUEUE_TABLE, chunk, key=sample.QUEUE_KEY, columns=list(sample.QUEUE_COLUMNS))
    return time.perf_counter() - started


def _drop_campaigns() -> None:
    """Delete the benchmark's campaigns with set-based SQL (the ORM would fetch 100k items first)."""
    # The accounts the loads wrote (their last campaign is one of the benchmark's), so every
    # measurement creates its accounts afresh.
    Account.objects.filter(last_campaign_date__in=DATES.values()).delete()
    ids = list(Campaign.objects.filter(date__in=DATES.values()).values_list("pk", flat=True))
    if not ids:
        return
    placeholders = ", ".join(["%s"] * len(ids))
    with transaction.atomic(), connection.cursor() as cursor:
        for model in (QueueItem, RejectedRow):
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)} WHERE campaign_id IN ({placeholders})", ids)
        Campaign.objects.filter(pk__in=ids).delete()


# The measured load runs in a fresh process, so its peak RSS is this load's and nothing else's.
CHILD = (
    "import os, sys, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'billing_dialer.settings'); django.setup(); "
    "from benchmarks.queue_load import child_load; child_load(int(sys.argv[1]), sys.argv[2])"
)


def _reset_table() -> None:
    _drop_campaigns()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(QueueItem._meta.db_table)}")
        # Write the previous measurement's dirty pages out now, not during the next one.
        # CHECKPOINT needs a privileged role; without one the timings are just noisier.
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")
        except DatabaseError:
            pass


def _run_ours_in_child(campaign_id: int, warehouse_url: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(campaign_id), warehouse_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the load process failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def child_load(campaign_id: int, warehouse_url: str) -> None:
    """The measured load (run by CHILD in a fresh process)."""
    with override_settings(WAREHOUSE_URL=warehouse_url, DATABRICKS_SERVER_HOSTNAME=""):
        campaign = Campaign.objects.get(pk=campaign_id)
        rss_before = _peak_rss_mb()
        started = time.perf_counter()
        progress = queue.queue_load(campaign=campaign, sql=DEFAULT_QUEUE_SQL)
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_before_mb": rss_before,
                "rss_peak_mb": _peak_rss_mb(),
                "read": progress.read,
                "inserted": progress.inserted,
                "rejected": progress.rejected,
                "no_touchpoint": progress.no_touchpoint,
            }
        )
    )


def _prepared(campaign: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The load's checked accounts and items, as `queue_load` would write them."""
    run = queue.load_run_create(campaign=campaign, source=queue.SOURCE_WAREHOUSE, now=dt.datetime.now(dt.timezone.utc))
    accounts: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    number = 0
    for rows in warehouse.iter_query(DEFAULT_QUEUE_SQL, chunk_size=queue.CHUNK_SIZE):
        numbered = []
        for row in rows:
            number += 1
            numbered.append((number, row))
        chunk = queue.queue_rows_prepare(run=run, rows=numbered)
        accounts.extend(chunk.accounts)
        items.extend(chunk.items)
    return accounts, items


def _prepared_items(campaign: Any) -> list[dict[str, Any]]:
    return _prepared(campaign)[1]


def _baseline(campaign: Any) -> tuple[int, float]:
    accounts, prepared = _prepared(campaign)
    now = dt.datetime.now(dt.timezone.utc)
    update_fields = ["segment" if name == "segment_id" else name for name in queue.ACCOUNT_FIELDS if name != "client_id"]
    started = time.perf_counter()
    # The ORM inserts model instances: building them from the prepared rows is its cost. Each
    # batch writes its clients' accounts (an upsert, as every load must) and their items.
    account_rows = [Account(**values, first_seen_at=now, last_seen_at=now, last_campaign_date=campaign.date) for values in accounts]
    instances = [QueueItem(**values) for values in prepared]
    for at in range(0, len(instances), BASELINE_BATCH):
        with transaction.atomic():
            Account.objects.bulk_create(
                account_rows[at : at + BASELINE_BATCH], update_conflicts=True, unique_fields=["client_id"], update_fields=update_fields
            )
            QueueItem.objects.bulk_create(instances[at : at + BASELINE_BATCH], batch_size=BASELINE_BATCH)
    return len(instances), time.perf_counter() - started


def _copy_floor(campaign: Any) -> tuple[int, float]:
    columns, rows = queue.queue_item_copy_rows(_prepared_items(campaign))
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    table = connection.ops.quote_name(QueueItem._meta.db_table)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return len(rows), time.perf_counter() - started


def _revalidate(campaign: Any, client_ids: list[str]) -> tuple[int, float, int]:
    gone = client_ids[int(len(client_ids) * ELIGIBLE_SHARE) :]
    warehouse.write_rows(
        sample.QUEUE_TABLE, [{"client_id": c, "balance_resolved": 1} for c in gone], key=sample.QUEUE_KEY, columns=["client_id", "balance_resolved"]
    )
    queued = QueueItem.objects.filter(campaign=campaign, status__in=queue.REVALIDATED_STATUSES).count()
    started = time.perf_counter()
    marked = queue.queue_revalidate(campaign=campaign, sql=DEFAULT_QUEUE_SQL)
    return marked, time.perf_counter() - started, queued


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> bool | None:
    if not CadenceStep.objects.filter(active=True).exists():
        print("No cadence steps in the database: run `python manage.py migrate` first.")
        return False
    clients = _clients()
    postgres = connection.vendor == "postgresql"
    print(f"database: {connection.vendor} ({connection.settings_dict['NAME']}); clients: {clients:,}; CPUs: {os.cpu_count()}")
    # Timings on a shared machine move with its load; say what it was.
    print("load average (1, 5, 15 min) at start: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    workdir = tempfile.mkdtemp(prefix="bench-queue-load-")
    warehouse_url = f"sqlite:///{workdir}/warehouse.sqlite3"
    try:
        with override_settings(WAREHOUSE_URL=warehouse_url, DATABRICKS_SERVER_HOSTNAME=""):
            print(f"warehouse: {clients:,} clients written to a temporary SQLite file in {_build_warehouse(clients):.1f} s")
            # Each measurement starts from the same table: no other benchmark rows, vacuumed,
            # as after a flush and a night of autovacuum.
            _reset_table()
            base_rows, base_s = _baseline(lifecycle.campaign_create(date=DATES["baseline"]))
            _reset_table()
            copy_rows, copy_s = _copy_floor(lifecycle.campaign_create(date=DATES["copy"])) if postgres else (0, 0.0)
            _reset_table()
            campaigns = {"ours": lifecycle.campaign_create(date=DATES["ours"])}
            ours = _run_ours_in_child(campaigns["ours"].pk, warehouse_url)
            client_ids = list(QueueItem.objects.filter(campaign=campaigns["ours"]).order_by("pk").values_list("client_id", flat=True))
            marked, revalidation_s, queued = _revalidate(campaigns["ours"], client_ids)
    finally:
        _drop_campaigns()
        shutil.rmtree(workdir, ignore_errors=True)

    print("load average (1, 5, 15 min) at end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    ours_rate = ours["inserted"] / ours["seconds"]
    base_rate = base_rows / base_s
    print()
    print(f"(a) ours      {ours['read']:>8,} rows read, {ours['inserted']:,} queued in {ours['seconds']:6.2f} s  {ours_rate:>10,.0f} rows/s")
    print(f"(b) baseline  {base_rows:>8,} clients, accounts and items in ORM batches of {BASELINE_BATCH}, one transaction each, {base_s:6.2f} s  {base_rate:>10,.0f} rows/s")
    ratio_base = ours_rate / base_rate
    ok = ratio_base >= BASELINE_RATIO_TARGET
    print(f"    ours ÷ baseline (rows/s): {ratio_base:5.1f}×   target ≥ {BASELINE_RATIO_TARGET:.0f}×  {_verdict(ratio_base >= BASELINE_RATIO_TARGET)}")
    if postgres:
        copy_rate = copy_rows / copy_s
        print(f"(c) COPY      {copy_rows:>8,} rows, one COPY of ready tuples, {copy_s:6.2f} s  {copy_rate:>10,.0f} rows/s")
        ratio_copy = ours_rate / copy_rate
        time_ratio = ours["seconds"] / copy_s
        print(
            f"    ours ÷ COPY (rows/s): {ratio_copy:5.2f}  — ours takes {time_ratio:.2f}× COPY's time; "
            f"target ≤ {COPY_TIME_RATIO_TARGET:g}×  {_verdict(time_ratio <= COPY_TIME_RATIO_TARGET)}"
        )
        ok = ok and time_ratio <= COPY_TIME_RATIO_TARGET
    else:
        print("(c) COPY      skipped: COPY is PostgreSQL's; set DATABASE_URL=postgres://… to measure the floor")
    rss_ok = ours["rss_peak_mb"] < RSS_TARGET_MB
    print(
        f"peak RSS of the loading process: {ours['rss_peak_mb']:.0f} MB (of which {ours['rss_before_mb']:.0f} MB before the load: "
        f"interpreter and Django); target < {RSS_TARGET_MB} MB  {_verdict(rss_ok)}"
    )
    reval_ok = revalidation_s < REVALIDATION_TARGET_S and marked == queued - int(queued * ELIGIBLE_SHARE)
    print(
        f"revalidation: {queued:,} queued items against {int(queued * ELIGIBLE_SHARE):,} still eligible — {marked:,} marked "
        f"ineligible in {revalidation_s:.2f} s (warehouse read included); target < {REVALIDATION_TARGET_S:.0f} s  {_verdict(reval_ok)}"
    )
    return ok and rss_ok and reval_ok
