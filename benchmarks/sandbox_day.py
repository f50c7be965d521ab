"""A whole 20,000-client sandbox day: `run_campaign --sandbox --clients 20000`, timed by stage.

Runs in child processes against a fresh database (a new PostgreSQL database when DATABASE_URL
points at PostgreSQL, else a temporary SQLite file) and a fresh sample warehouse, so nothing of
the developer's own data is touched. Targets: the whole day in under 5 minutes on 2 cores, with
at least 90% of the call touchpoints reached before their calling window closed (a fast wall
time that skipped most of the day would be no result).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

CLIENTS = int(os.environ.get("BENCH_DAY_CLIENTS", "20000"))
TARGET_SECONDS = 300.0
ROOT = Path(__file__).resolve().parents[1]


def _fresh_database(workdir: Path) -> tuple[str, str | None]:
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith("postgres"):
        return f"sqlite:///{workdir / 'portal.sqlite3'}", None
    import psycopg

    name = f"billing_dialer_bench_{uuid.uuid4().hex[:8]}"
    admin = configured.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return configured.rsplit("/", 1)[0] + f"/{name}", name


def _drop(name: str | None) -> None:
    if name is None:
        return
    import psycopg

    admin = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> bool:
    with tempfile.TemporaryDirectory(prefix="bench-day-") as tmp:
        workdir = Path(tmp)
        url, pg_name = _fresh_database(workdir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_CLOCK_")}
        env.update(
            DATABASE_URL=url,
            WAREHOUSE_URL=f"sqlite:///{workdir / 'warehouse.sqlite3'}",
            RECONCILED_FILE_DIR=str(workdir / "reconciled"),
            LOG_LEVEL="WARNING",
            DEBUG="True",
        )
        try:
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, capture_output=True)
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "manage.py", "run_campaign", "--sandbox", "--clients", str(CLIENTS), "--quiet"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
            )
            wall = time.perf_counter() - started
        finally:
            _drop(pg_name)
    if not result.stdout.strip().startswith("{"):
        print(result.stderr[-3000:])
        return False
    summary = json.loads(result.stdout)
    backend = "postgresql" if pg_name else "sqlite"
    print(f"clients {CLIENTS} on {backend}, clock at {summary['speed']:g}×: wall time {wall:.1f} s (target < {TARGET_SECONDS:.0f} s)")
    for stage, seconds in summary["stages"].items():
        print(f"  {stage:18} {seconds:8.2f}")
    print(f"  touchpoints queued {summary['load']['queued']}, calls placed {summary['outcomes']['calls_placed']}, "
          f"texts sent {summary['sms'].get('sent_total', 0)}, rows flushed {summary['rows_flushed']}")
    call_touchpoints = summary["load"].get("call_touchpoints", 0)
    out_of_time = summary["reach"]["call_touchpoints_out_of_time"]
    dialed = summary["reach"]["call_touchpoints_dialed"]
    reached = (call_touchpoints - out_of_time) / call_touchpoints if call_touchpoints else 0.0
    print(f"  call touchpoints {call_touchpoints}: {dialed} dialed, {out_of_time} not reached before their window closed or the day ended; "
          f"share reached {reached:.0%} (target ≥ 90%)")
    if summary["outcomes"]["calls_placed"]:
        print(f"  calls per second of calling stage: {summary['outcomes']['calls_placed'] / max(summary['stages']['calling_s'], 0.001):.1f}")
    for check in summary["invariants"]:
        print(f"  invariant {check['name']}: {'ok' if check['ok'] else 'FAILED'} — {check['detail']}")
    return bool(summary["ok"]) and result.returncode == 0 and wall < TARGET_SECONDS and reached >= 0.9
