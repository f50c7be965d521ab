"""Release throughput: 10k queued call items, 4 ring groups, the sandbox Retell answering at once.

Run with `python -m benchmarks.release` (or through `make bench`), against the database
DATABASE_URL names (PostgreSQL is the target). The project is served by gunicorn on a free port,
so calls go over real HTTP to the sandbox Retell and Dialflow, through the real clients. Dialflow
reports plenty of free agents, pacing is off and the concurrency limits are out of the way, so
what is measured is the release itself: claim (with the compliance gate), attempts, the
create-call round trip, and recording each call.

Printed: calls/s overall; per released call the total time and our overhead with the time spent
inside the create-call HTTP round trip taken out (that round trip includes the simulator's own
database work, which in production is Retell's); database queries per call; and the gate alone
(ms per item, and its query count for a 2,500-item batch, which must not grow with the batch).
Target: overhead under 5 ms per call on PostgreSQL.

Everything the run creates (a campaign on a far-future date, its items, attempts, ledger
entries, gate decisions and simulated calls) is deleted afterwards, and the settings it changed
are restored.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_dialer.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from cadences.models import ActionType, CadenceStep, DialerSettings, Phase, Segment  # noqa: E402
from campaigns.models import CallAttempt, Campaign, ContactLedgerEntry, GateDecision, QueueItem  # noqa: E402
from campaigns.compliance import gate as compliance  # noqa: E402
from campaigns.calls import release  # noqa: E402
from integrations.sandbox.models import SimulatedCall, SimulatedDelivery, SimulatorConfig  # noqa: E402

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_OVERHEAD_MS = 5.0
RING_GROUPS = ("billing-east", "billing-west", "resurrection-east", "resurrection-west")
NY = ZoneInfo("America/New_York")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served_app() -> Iterator[str]:
    """This project under gunicorn on a free local port (the sandbox vendors live under
    /sandbox/), in its own process: the simulator's work must not compete for this process's
    interpreter while the release code is being timed."""
    port = _free_port()
    # Production-like (DEBUG off) but serving the simulators the release loop calls.
    env = {**os.environ, "DEBUG": "False", "SANDBOX_ENABLED": "True", "SECRET_KEY": settings.SECRET_KEY, "SECURE_SSL_REDIRECT": "False", "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "gunicorn", "billing_dialer.wsgi", "--workers", "1", "--bind", f"127.0.0.1:{port}", "--timeout", "60"]
    with tempfile.TemporaryFile() as log_file:
        server = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                if server.poll() is not None:
                    log_file.seek(0)
                    raise RuntimeError(f"gunicorn exited with {server.returncode}: {log_file.read()[-2000:].decode(errors='replace')}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("gunicorn did not answer within 30 s") from None
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@contextmanager
def bench_settings(app_url: str) -> Iterator[None]:
    """Pacing off, limits out of the way, the sandbox answering at once; restored afterwards."""
    old_app_url = settings.SANDBOX_APP_URL
    settings.SANDBOX_APP_URL = app_url
    dialer = DialerSettings.load()
    saved_dialer = {f: getattr(dialer, f) for f in ("calls_per_second", "max_concurrent_calls", "max_call_attempts_per_day")}
    config = SimulatorConfig.load()
    saved_config = {f: getattr(config, f) for f in ("retell_concurrency_limit", "auto_dispatch", "dialflow_pattern", "dialflow_overrides", "create_error_rate")}
    # Querysets, not save(): a benchmark may set what the admin's validators would refuse (0 = no pacing).
    DialerSettings.objects.filter(pk=dialer.pk).update(calls_per_second=0, max_concurrent_calls=30000, max_call_attempts_per_day=2)
    SimulatorConfig.objects.filter(pk=config.pk).update(
        retell_concurrency_limit=30000, auto_dispatch=False, dialflow_pattern=[500], dialflow_overrides={}, create_error_rate=0
    )
    try:
        yield
    finally:
        DialerSettings.objects.filter(pk=dialer.pk).update(**saved_dialer)
        SimulatorConfig.objects.filter(pk=config.pk).update(**saved_config)
        settings.SANDBOX_APP_URL = old_app_url


def _free_date() -> dt.date:
    taken = set(Campaign.objects.filter(date__year__gte=2090).values_list("date", flat=True))
    day = dt.date(2090, 1, 2)
    while day in taken:
        day += dt.timedelta(days=1)
    return day


def build_campaign(*, items: int, batch_size: int) -> tuple[Campaign, str]:
    segment, _ = Segment.objects.get_or_create(
        name="Benchmark Segment",
        defaults={
            "first_outreach_day": 1,
            "suspension_day": 60,
            "cancellation_day": 180,
            "billing_transfer_number": "+12125550188",
            "resurrection_transfer_number": "+12125550199",
            "billing_ring_group": RING_GROUPS[0],
            "resurrection_ring_group": RING_GROUPS[2],
            "billing_inbox_id": "bench-billing",
            "resurrection_inbox_id": "bench-resurrection",
        },
    )
    step, _ = CadenceStep.objects.get_or_create(
        segment=segment,
        day=20,
        defaults={
            "action_type": ActionType.CALL,
            "phase": Phase.PAST_DUE,
            "voicemail_prompt": "Please call us back about your account.",
            "live_call_prompt": "Remind the client of the past-due payment and offer the payment link.",
        },
    )
    campaign = Campaign.objects.create(date=_free_date(), status=Campaign.Status.RUNNING, batch_size=batch_size, release_threshold=1)
    prefix = f"BENCH-{uuid.uuid4().hex[:6]}-"
    rows = [
        QueueItem(
            campaign=campaign,
            client_id=f"{prefix}{n:06d}",
            client_name=f"Bench Client {n}",
            phone=f"+1{212 + n % 7}555{n % 10000:04d}",
            segment=segment,
            step=step,
            days_past_due=20,
            phase=Phase.PAST_DUE,
            action_type=ActionType.CALL,
            ring_group=RING_GROUPS[n % len(RING_GROUPS)],
            transfer_number="+12125550188",
            inbox_id="bench-billing",
            voicemail_prompt=step.voicemail_prompt,
            live_call_prompt=step.live_call_prompt,
            amount_due=Decimal("250.00"),
            state="NY",
            timezones="America/New_York",
        )
        for n in range(items)
    ]
    QueueItem.objects.bulk_create(rows, batch_size=2000)
    return campaign, prefix


def cleanup(campaign: Campaign, prefix: str) -> None:
    call_ids = list(CallAttempt.objects.filter(campaign=campaign).exclude(call_id=None).values_list("call_id", flat=True))
    for start in range(0, len(call_ids), 1000):
        chunk = call_ids[start : start + 1000]
        SimulatedDelivery.objects.filter(reference__in=chunk).delete()
        SimulatedCall.objects.filter(call_id__in=chunk).delete()
    ContactLedgerEntry.objects.filter(client_id__startswith=prefix).delete()
    GateDecision.objects.filter(client_id__startswith=prefix).delete()
    campaign.delete()


class QueryCounter:
    """Counts the statements this process sends (DEBUG's query log is off and capped)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


class TimedRetell:
    """Wraps create_phone_call to add up the time (wall and this process's CPU) spent inside the
    HTTP round trip."""

    def __init__(self) -> None:
        self.original = release.retell.create_phone_call
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.calls = 0

    def __call__(self, **kwargs: Any) -> Any:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            return self.original(**kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            self.cpu_seconds += time.process_time() - cpu_started
            self.calls += 1


def measure_release(*, items: int, batch_size: int) -> dict[str, float]:
    campaign, prefix = build_campaign(items=items, batch_size=batch_size)
    # A fixed business time inside everyone's calling window on the campaign's day.
    now = dt.datetime.combine(campaign.date, dt.time(12, 0), tzinfo=NY)
    timed = TimedRetell()
    release.retell.create_phone_call = timed  # type: ignore[assignment]
    try:
        state = release.LoopState(pacer=release.Pacer(None))
        queries = QueryCounter()
        with connection.execute_wrapper(queries):
            started, cpu_started = time.perf_counter(), time.process_time()
            passes = 0
            while QueueItem.objects.filter(campaign=campaign, status=QueueItem.Status.QUEUED).exists():
                # Each ring group's batch is resolved as soon as it is placed (no webhooks in a
                # benchmark), so the next pass may release the next batch at once.
                release.ReleaseBatch.objects.filter(campaign=campaign, resolved_at__isnull=True).update(resolved_at=now)
                release.release_pass(campaign=campaign, now_fn=lambda: now, state=state)
                passes += 1
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        placed = CallAttempt.objects.filter(campaign=campaign, status=CallAttempt.Status.REGISTERED).count()
        campaign.refresh_from_db()
        if placed != items or campaign.calls_placed != items:
            raise SystemExit(f"benchmark invalid: {placed} calls registered, calls_placed={campaign.calls_placed}, expected {items}")
        overhead = elapsed - timed.seconds
        return {
            "calls": placed,
            "passes": passes,
            "seconds": elapsed,
            "calls_per_second": placed / elapsed,
            "total_ms_per_call": elapsed / placed * 1000,
            "http_ms_per_call": timed.seconds / placed * 1000,
            "overhead_ms_per_call": overhead / placed * 1000,
            "queries_per_call": queries.count / placed,
            "cpu_ms_per_call": (cpu - timed.cpu_seconds) / placed * 1000,
        }
    finally:
        release.retell.create_phone_call = timed.original  # type: ignore[assignment]
        cleanup(campaign, prefix)


def measure_gate(*, items: int, batch: int) -> dict[str, float]:
    campaign, prefix = build_campaign(items=items, batch_size=batch)
    try:
        now = dt.datetime.combine(campaign.date, dt.time(12, 0), tzinfo=NY)
        rows = list(QueueItem.objects.filter(campaign=campaign).select_related("segment"))
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            compliance.gate_calls(campaign=campaign, items=rows[start : start + batch], now=now)
        elapsed = time.perf_counter() - started
        small, large = QueryCounter(), QueryCounter()
        with connection.execute_wrapper(small):
            compliance.gate_calls(campaign=campaign, items=rows[:1], now=now)
        with connection.execute_wrapper(large):
            compliance.gate_calls(campaign=campaign, items=rows[:batch], now=now)
        return {"ms_per_item": elapsed / len(rows) * 1000, "queries_1_item": small.count, f"queries_{batch}_items": large.count}
    finally:
        cleanup(campaign, prefix)


def run(*, items: int = 10_000, batch_size: int = 2_500) -> dict[str, Any]:
    vendor = connection.vendor
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with served_app() as app_url, bench_settings(app_url):
        gate = measure_gate(items=items, batch=batch_size)
        result = measure_release(items=items, batch_size=batch_size)
    print(f"release benchmark on {vendor}: {items:,} queued call items, {len(RING_GROUPS)} ring groups, batch {batch_size:,}, pacing off")
    print(f"  machine load           {load:.1f} (1-min average at the start, {os.cpu_count()} CPUs)")
    print(f"  released               {result['calls']:,} calls in {result['seconds']:.2f} s ({result['passes']} passes)")
    print(f"  throughput             {result['calls_per_second']:,.0f} calls/s")
    print(f"  total per call         {result['total_ms_per_call']:.2f} ms")
    print(f"  create-call HTTP       {result['http_ms_per_call']:.2f} ms (round trip to the sandbox Retell, its own DB work included)")
    print(f"  our overhead per call  {result['overhead_ms_per_call']:.2f} ms (gate included)   target < {TARGET_OVERHEAD_MS} ms")
    print(f"  our CPU per call       {result['cpu_ms_per_call']:.2f} ms (this process, HTTP round trip excluded; less sensitive than wall time to other load on the machine)")
    print(f"  queries per call       {result['queries_per_call']:.1f}")
    print(
        f"  gate alone             {gate['ms_per_item']:.3f} ms per item; queries: {gate['queries_1_item']} for 1 item, "
        f"{gate[f'queries_{batch_size}_items']} for {batch_size:,} items"
    )
    ok = result["overhead_ms_per_call"] < TARGET_OVERHEAD_MS and gate["queries_1_item"] == gate[f"queries_{batch_size}_items"]
    print(f"  {'PASS' if ok else 'MISS'}" + ("" if vendor == "postgresql" else " (the target is set for PostgreSQL)"))
    return {"vendor": vendor, "release": result, "gate": gate, "ok": ok}


def main(argv: Sequence[str] = ()) -> bool:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.release", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=2_500)
    args = parser.parse_args(list(argv))
    return bool(run(items=args.items, batch_size=args.batch_size)["ok"])


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
