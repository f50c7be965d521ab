"""Grace's live tools: signed custom-function calls into gunicorn at 50 concurrent requests.

Run with `python -m benchmarks.live_tools` (or through `make bench`). Like the webhook benchmark
it runs on PostgreSQL (re-running itself against BENCH_DATABASE_URL when DATABASE_URL names
another database) and serves the project through `gunicorn --workers 2 --threads 8` with DEBUG
off, plus the benchmark-only no-op view as the baseline.

Set-up: `--accounts` accounts (default 300) of a benchmark segment, each with keyed identity
hashes; one call per request, the functions mixed as a call uses them — verify_identity (right
and wrong answers), lookup_account, record_promise, schedule_callback and transfer_brief — each
signed at send time; a tenth sent again (Retell's retries), which must get the very same answer.
Then `--requests` (default 2,000) as fast as `--concurrency` (default 50) connections allow, and
the same number of no-op requests.

Printed: requests/s, p50 and p99 latency, the ratio to the no-op view, and the answers checked
(every request 200, every retry's answer equal to the first). Everything created is deleted.

Target: p99 < 300 ms at 50 concurrent requests, no error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from benchmarks import webhooks as bench  # sets Django up, and has the server and the load generator

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from cadences.models import Segment  # noqa: E402
from campaigns.models import Account, Callback, FollowUpTask, GateDecision, LiveToolCall, PromiseToPay  # noqa: E402
from campaigns.queue import identity  # noqa: E402

FUNCTIONS_PATH = "/webhooks/retell/functions/"
TARGET_P99_MS = 300.0
DOB, SSN4 = "1979-11-23", "3307"


def _rerun_on_postgres(argv: Sequence[str]) -> bool:
    url = os.environ.get("BENCH_DATABASE_URL", bench.DEFAULT_BENCH_DATABASE_URL)
    print(f"live tools benchmark: DATABASE_URL is {connection.vendor}; re-running on PostgreSQL ({url.rsplit('@', 1)[-1]})", flush=True)
    bench._ensure_database(url)
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=bench.BASE_DIR, env=env, check=True)
    return subprocess.run([sys.executable, "-m", "benchmarks.live_tools", *argv], cwd=bench.BASE_DIR, env=env).returncode == 0


def build(prefix: str, accounts: int) -> tuple[Segment, list[Account]]:
    segment = Segment.objects.create(
        name=f"{prefix} segment", first_outreach_day=1, suspension_day=60, cancellation_day=180,
        billing_transfer_number="+12125550188", resurrection_transfer_number="+12125550199",
        billing_ring_group="billing", resurrection_ring_group="resurrection",
        billing_inbox_id="inbox-billing", resurrection_inbox_id="inbox-resurrection", verify_before_balance=False,
    )  # fmt: skip
    now = timezone.now()
    rows = [
        Account(
            client_id=f"{prefix}-{n:05d}", name=f"Bench Client {n}", phone=f"+1212555{n % 10000:04d}", segment=segment,
            days_past_due=20 + n % 30, amount_due=Decimal("250.00"), timezones="America/New_York", state="NY",
            first_seen_at=now, last_seen_at=now,
            date_of_birth_hash=identity.date_of_birth_hash(DOB), ssn_last4_hash=identity.ssn_last4_hash(SSN4),
        )  # fmt: skip
        for n in range(accounts)
    ]
    return segment, Account.objects.bulk_create(rows, batch_size=500)


def bodies(prefix: str, accounts: list[Account], requests: int) -> list[bytes]:
    promise_day = (timezone.localdate() + dt.timedelta(days=7)).isoformat()
    mix = [
        ("verify_identity", {"date_of_birth": DOB}),
        ("verify_identity", {"ssn_last4": "0000"}),
        ("lookup_account", {}),
        ("lookup_account", {}),
        ("record_promise", {"date": promise_day, "amount": 100}),
        ("schedule_callback", {"time": "tomorrow at 10am"}),
        ("transfer_brief", {"reason": "wants a payment plan"}),
    ]
    out: list[bytes] = []
    for n in range(requests):
        account = accounts[n % len(accounts)]
        name, args = mix[n % len(mix)]
        call = {"call_id": f"{prefix}-call-{n}", "direction": "outbound", "to_number": account.phone, "metadata": {"client_id": account.client_id}}
        out.append(json.dumps({"name": name, "call": call, "args": args}).encode())
    return out


def cleanup(prefix: str, segment: Segment) -> None:
    LiveToolCall.objects.filter(call_id__startswith=prefix).delete()
    PromiseToPay.objects.filter(call_id__startswith=prefix).delete()
    Callback.objects.filter(consent_call_id__startswith=prefix).delete()
    FollowUpTask.objects.filter(source_ref__startswith=prefix).delete()
    GateDecision.objects.filter(client_id__startswith=prefix).delete()
    Account.objects.filter(client_id__startswith=prefix).delete()
    segment.delete()


def run(*, accounts: int, requests: int, concurrency: int, workers: int, threads: int) -> bool:
    prefix = f"bench-live-{uuid.uuid4().hex[:8]}"
    segment, rows = build(prefix, accounts)
    try:
        payloads = bodies(prefix, rows, requests)
        retries = payloads[: max(1, requests // 10)]
        logs = Path(tempfile.mkdtemp(prefix="bench-live-tools-"))
        with bench.gunicorn(workers, threads, logs / "gunicorn.log") as port:
            bench.closed_loop(port, FUNCTIONS_PATH, payloads[:50], concurrency=concurrency, signed=True)  # warm-up
            LiveToolCall.objects.filter(call_id__startswith=prefix).delete()
            PromiseToPay.objects.filter(call_id__startswith=prefix).delete()
            Callback.objects.filter(consent_call_id__startswith=prefix).delete()
            measured = bench.closed_loop(port, FUNCTIONS_PATH, payloads, concurrency=concurrency, signed=True)
            first = {row.call_id: row.response for row in LiveToolCall.objects.filter(call_id__startswith=prefix)}
            repeated = bench.closed_loop(port, FUNCTIONS_PATH, retries, concurrency=concurrency, signed=True)
            noop = bench.closed_loop(port, bench.NOOP_PATH, payloads, concurrency=concurrency, signed=False)
        stored = LiveToolCall.objects.filter(call_id__startswith=prefix).count()
        after = {row.call_id: row.response for row in LiveToolCall.objects.filter(call_id__startswith=prefix)}
    finally:
        cleanup(prefix, segment)
    p50, p99 = measured.percentile(50), measured.percentile(99)
    ratio = measured.rate / noop.rate if noop.rate else 0.0
    errors = {s: n for s, n in measured.statuses.items() if s != 200}
    retry_errors = {s: n for s, n in repeated.statuses.items() if s != 200}
    print(f"live tools on {connection.vendor} (gunicorn, {workers} workers × {threads} threads), {concurrency} concurrent requests")
    print(f"  functions    {measured.rate:7.0f} requests/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   ({measured.sent:,} requests)   target p99 < {TARGET_P99_MS:.0f} ms")
    print(f"  no-op view   {noop.rate:7.0f} requests/s   p50 {noop.percentile(50):6.1f} ms   p99 {noop.percentile(99):6.1f} ms")
    print(f"  ratio        {ratio:.2f} × the no-op view's rate")
    print(f"  answers      {measured.statuses.get(200, 0):,} × 200, {sum(errors.values())} other; {stored:,} stored for {requests:,} calls")
    print(f"  retries      {repeated.statuses.get(200, 0):,} × 200, {len(after) == len(first) and after == first and 'same answers, nothing stored twice' or 'ANSWERS CHANGED'}")
    return not errors and not retry_errors and p99 < TARGET_P99_MS and stored == requests and after == first


def main(argv: Sequence[str] = ()) -> bool:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live_tools", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(list(argv))
    if connection.vendor != "postgresql":
        return _rerun_on_postgres(list(argv))
    return run(accounts=args.accounts, requests=args.requests, concurrency=args.concurrency, workers=args.workers, threads=args.threads)


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
