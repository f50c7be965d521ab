"""Webhook ingest: signed Retell events into gunicorn (2 workers) on PostgreSQL.

Run with `python -m benchmarks.webhooks` (or through `make bench`). The benchmark needs
PostgreSQL: when DATABASE_URL names another database it re-runs itself against
BENCH_DATABASE_URL (default `postgres://postgres@127.0.0.1:5432/billing_dialer_bench`, created
and migrated if missing).

Set-up: a running campaign on a far-future date with dialing call items and their registered
attempts; `gunicorn billing_dialer.wsgi --workers 2 --threads 8` (gthread: a webhook mostly waits
for its commit, and threads overlap those waits; `--threads 1` measures sync workers) on a free
loopback port, DEBUG off, with the project's settings plus one benchmark-only URL,
`/bench/noop/` — the same middleware stack and no work, the baseline; then the project's
django-q2 cluster (`manage.py qcluster`, the Procfile's `worker`), which processes the stored
events once the web tier is measured, so the two do not split the CPUs while ingest is timed. The load generator is this process: threads, one `http.client` connection per
request (sync workers close each one), loopback only, every phase bounded in requests and time.

Phases:
1. **throughput** — every call's `call_ended` and `call_analyzed` (outcomes mixed as a day's:
   answered, voicemail found only by the analysis, voicemail, no answer, transferred, failed;
   some promises to pay and disputes), plus a tenth of them sent twice back to back, as fast as
   `--concurrency` connections (default 32) allow: webhooks/s.
2. **latency** — more calls' events at a fixed 100/s (open loop, latency measured from each
   request's scheduled time, so a stall is not hidden): p50 and p99.
3. **baseline** — the no-op view with the same bodies and concurrency: requests/s, and the ratio.
4. **sustained** — with the django-q2 cluster now running beside the web tier, as in production,
   more calls' events at a fixed `--sustain-rate` (default 30/s) for `--sustain-seconds` (default
   300): a 20-concurrent-call account emits about 1 webhook/s, so this is ten times three times its
   peak. Every request must be answered 2xx, none dropped, with p50/p99/max reported.
5. **processing** — the cluster until every stored event is processed (reported, not a target).

Afterwards, from what each request was answered: every distinct event accepted once (its
repeats answered 200) and stored once, all processed, each attempt at the outcome its delivered
events give, the campaign counters equal to a recount from the items, and the ledger holding one
attempt per resolved call and one conversation per answered or transferred call — "0 lost or
double-counted". Everything the run created is then deleted.

Targets: ≥ 300 webhooks/s; p99 < 100 ms at 100/s; ≥ 0.4 × the no-op view's rate; the sustained
phase with no error and its rate held (≥ 95 % of the requested rate).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import django
import psycopg

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_dialer.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Max  # noqa: E402
from django_q.models import OrmQ  # noqa: E402
from django_q.signing import SignedPackage  # noqa: E402

from cadences.models import ActionType, CadenceStep, Phase, Segment  # noqa: E402
from campaigns.models import (  # noqa: E402
    CallAttempt,
    Campaign,
    ContactLedgerEntry,
    FollowUpTask,
    PromiseToPay,
    QueueItem,
    Suppression,
    WebhookEvent,
)
from campaigns.webhooks.inbox import PROCESS_BY_KEY_TASK, PROCESS_TASK  # noqa: E402
from campaigns.transitions import campaign_recount  # noqa: E402
from integrations.retell import client as retell  # noqa: E402

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_BENCH_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/billing_dialer_bench"
TARGET_RATE = 300.0
TARGET_P99_MS = 100.0
TARGET_RATIO = 0.4
FIXED_RATE = 100.0
WARMUP_CALLS = 64  # two events each, spread over the 2 × 8 server threads
PHASE_TIME_LIMIT = 120.0
SUSTAIN_RATE = 30.0
SUSTAIN_SECONDS = 300.0
DRAIN_TIME_LIMIT = 600.0
REQUEST_TIMEOUT = 15.0
WEBHOOK_PATH = "/webhooks/retell/"
NOOP_PATH = "/bench/noop/"

# (share of calls, call_status, disconnection_reason, in_voicemail, expected outcome)
MIX: list[tuple[int, str, str, bool, str]] = [
    (45, "ended", "user_hangup", False, "answered"),
    (25, "ended", "agent_hangup", True, "voicemail"),  # only the analysis tells it was a voicemail
    (10, "ended", "voicemail_reached", True, "voicemail"),
    (10, "not_connected", "dial_no_answer", False, "no_answer"),
    (5, "ended", "call_transfer", False, "transferred"),
    (5, "not_connected", "dial_failed", False, "failed"),
]
TRANSCRIPT = (
    "Agent: Hi, this is Grace from the billing team. Am I speaking with {name}?\n"
    "User: Yes, speaking.\n"
    "Agent: Thanks. I'm calling about the payment on your account that is now {days} days past due, "
    "${amount}. Would you be able to take care of it today?\n"
    "User: Not today, but I get paid on Friday. I can do it then.\n"
    "Agent: That works. I'll text you a secure payment link, and you can pay there any time.\n"
    "User: Great, thanks.\n"
    "Agent: Thank you, have a good day."
)


# --- Running on PostgreSQL ---------------------------------------------------------------------


def _ensure_database(url: str) -> None:
    parts = url.rsplit("/", 1)
    name = parts[1].split("?", 1)[0]
    admin_url = parts[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')


def _rerun_on_postgres(argv: Sequence[str]) -> bool:
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_BENCH_DATABASE_URL)
    print(f"webhooks benchmark: DATABASE_URL is {connection.vendor}; re-running on PostgreSQL ({url.rsplit('@', 1)[-1]})", flush=True)
    _ensure_database(url)
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    done = subprocess.run([sys.executable, "-m", "benchmarks.webhooks", *argv], cwd=BASE_DIR, env=env)
    return done.returncode == 0


# --- Rows the webhooks are about ----------------------------------------------------------------


@dataclass
class Fixture:
    campaign: Campaign
    prefix: str
    attempts: list[CallAttempt]
    planned: dict[str, Planned] = field(default_factory=dict)  # call_id → outcome
    ormq_floor: int = 0  # the django-q queue's last row before the run


def _free_date() -> dt.date:
    taken = set(Campaign.objects.filter(date__year__gte=2091).values_list("date", flat=True))
    day = dt.date(2091, 3, 1)
    while day in taken:
        day += dt.timedelta(days=1)
    return day


def build_fixture(calls: int) -> Fixture:
    segment, _ = Segment.objects.get_or_create(
        name="Webhook Benchmark Segment",
        defaults={
            "first_outreach_day": 1,
            "suspension_day": 60,
            "cancellation_day": 180,
            "billing_transfer_number": "+12125550188",
            "resurrection_transfer_number": "+12125550199",
            "billing_ring_group": "bench-billing",
            "resurrection_ring_group": "bench-resurrection",
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
    campaign = Campaign.objects.create(date=_free_date(), status=Campaign.Status.RUNNING)
    prefix = f"WHB-{uuid.uuid4().hex[:6]}-"
    items = QueueItem.objects.bulk_create(
        [
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
                ring_group="bench-billing",
                transfer_number="+12125550188",
                inbox_id="bench-billing",
                voicemail_prompt=step.voicemail_prompt,
                live_call_prompt=step.live_call_prompt,
                amount_due=Decimal("250.00"),
                state="NY",
                timezones="America/New_York",
                status=QueueItem.Status.DIALING,
                call_attempts=1,
            )
            for n in range(calls)
        ],
        batch_size=2000,
    )
    if connection.vendor != "postgresql":
        items = list(QueueItem.objects.filter(campaign=campaign).order_by("pk"))
    attempts = CallAttempt.objects.bulk_create(
        [
            CallAttempt(
                campaign=campaign,
                queue_item=item,
                call_id=f"call_{uuid.uuid4().hex}",
                from_number="+12125550100",
                to_number=item.phone,
                status=CallAttempt.Status.REGISTERED,
            )
            for item in items
        ],
        batch_size=2000,
    )
    floor = OrmQ.objects.aggregate(last=Max("id"))["last"] or 0
    return Fixture(campaign=campaign, prefix=prefix, attempts=attempts, ormq_floor=floor)


def _mix_row(n: int) -> tuple[str, str, bool, str]:
    slot = n % 100
    for share, call_status, reason, in_voicemail, outcome in MIX:
        if slot < share:
            return call_status, reason, in_voicemail, outcome
        slot -= share
    raise AssertionError("MIX shares must add up to 100")


@dataclass(frozen=True)
class Delivery:
    call_id: str
    event: str
    body: bytes


@dataclass(frozen=True)
class Planned:
    outcome: str  # once call_analyzed is in
    ended_only: str  # what call_ended alone says (a voicemail found by the analysis is "answered")


def call_events(attempt: CallAttempt, n: int) -> tuple[list[Delivery], Planned]:
    """The call_ended and call_analyzed deliveries of one call (as Retell sends them), and its outcome."""
    assert attempt.call_id is not None  # every fixture attempt is registered with a call id
    call_status, reason, in_voicemail, outcome = _mix_row(n)
    connected = call_status == "ended"
    start_ms = int(time.time() * 1000) - 180_000
    duration = 95_000 if connected else 0
    call: dict[str, Any] = {
        "call_type": "phone_call",
        "call_id": attempt.call_id,
        "agent_id": "agent_grace_sandbox",
        "agent_version": 4,
        "call_status": call_status,
        "direction": "outbound",
        "from_number": attempt.from_number,
        "to_number": attempt.to_number,
        "metadata": {"campaign_id": attempt.campaign_id, "queue_item_id": attempt.queue_item_id, "attempt_id": str(attempt.pk)},
        "retell_llm_dynamic_variables": {"client_name": f"Bench Client {n}", "amount_due": "250.00", "days_past_due": "20"},
        "start_timestamp": start_ms,
        "end_timestamp": start_ms + duration,
        "duration_ms": duration,
        "disconnection_reason": reason,
        "call_cost": {"product_costs": [{"product": "retell_platform", "unit_price": 0.1167, "cost": 11.09}], "total_duration_seconds": duration // 1000, "total_duration_unit_price": 0.1167, "combined_cost": 11.09},
    }
    if connected:
        transcript = TRANSCRIPT.format(name=f"Bench Client {n}", days=20, amount="250.00")
        call.update(
            transcript=transcript,
            transcript_object=[{"role": line.split(":", 1)[0].lower(), "content": line.split(": ", 1)[1], "words": []} for line in transcript.splitlines()],
            recording_url=f"https://dxc03zgurdly9.cloudfront.net/{attempt.call_id}/recording.wav",
        )
    if reason == "call_transfer":
        call["transfer_destination"] = "+12125550188"
    custom: dict[str, Any] = {"right_party": connected and not in_voicemail}
    if outcome == "answered" and n % 10 == 0:
        custom.update(promise_to_pay_date=(dt.date.today() + dt.timedelta(days=5)).isoformat(), promise_to_pay_amount=125)
    if outcome == "answered" and n % 20 == 5:
        custom["dispute"] = "Client says the amount was already paid."
    analyzed_call = {
        **call,
        "call_analysis": {
            "call_summary": "Bench call summary." if connected else "",
            "in_voicemail": in_voicemail,
            "user_sentiment": "Neutral",
            "call_successful": connected and not in_voicemail,
            "custom_analysis_data": custom if connected else {},
        },
    }
    stamp = start_ms + duration
    ended = json.dumps({"event": "call_ended", "call": call, "event_timestamp": stamp + 500}, ensure_ascii=False)
    analyzed = json.dumps({"event": "call_analyzed", "call": analyzed_call, "event_timestamp": stamp + 9000}, ensure_ascii=False)
    deliveries = [
        Delivery(attempt.call_id, "call_ended", ended.encode("utf-8")),
        Delivery(attempt.call_id, "call_analyzed", analyzed.encode("utf-8")),
    ]
    ended_only = "answered" if reason == "agent_hangup" else outcome
    return deliveries, Planned(outcome, ended_only)


def cleanup(fixture: Fixture) -> None:
    # Tasks a cluster did not get to (a run cut short) would otherwise wait for the next cluster.
    for row in OrmQ.objects.filter(id__gt=fixture.ormq_floor):
        try:
            task = SignedPackage.loads(row.payload)
        except Exception:
            continue
        if task.get("func") in (PROCESS_TASK, PROCESS_BY_KEY_TASK):
            row.delete()
    call_ids = [a.call_id for a in fixture.attempts]
    for start in range(0, len(call_ids), 1000):
        WebhookEvent.objects.filter(vendor="retell", reference__in=call_ids[start : start + 1000]).delete()
    ContactLedgerEntry.objects.filter(client_id__startswith=fixture.prefix).delete()
    FollowUpTask.objects.filter(client_id__startswith=fixture.prefix).delete()
    PromiseToPay.objects.filter(client_id__startswith=fixture.prefix).delete()
    Suppression.objects.filter(client_id__startswith=fixture.prefix).delete()
    fixture.campaign.delete()


# --- The server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])




def _server_env() -> dict[str, str]:
    """Production-like: DEBUG off (no query log), INFO logging; plain HTTP on loopback."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks._webhooks_settings",
        "DEBUG": "False",
        # The events are signed with the sandbox's key, which only a portal with the sandbox on accepts.
        "SANDBOX_ENABLED": "True",
        # This process's key: django-q signs tasks with it, and the clean-up here reads them.
        "SECRET_KEY": settings.SECRET_KEY,
        "SECURE_SSL_REDIRECT": "False",
        "ALLOWED_HOSTS": "127.0.0.1",
    }


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def qcluster(log_path: Path) -> Iterator[None]:
    """The project's django-q2 cluster (its configured workers), processing the stored events."""
    with log_path.open("wb") as log_file:
        cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=BASE_DIR, env=_server_env(), stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            yield
        finally:
            _stop(cluster)


@contextmanager
def gunicorn(workers: int, threads: int, log_path: Path) -> Iterator[int]:
    port = _free_port()
    env = _server_env()
    command = [
        sys.executable, "-m", "gunicorn", "billing_dialer.wsgi",
        "--workers", str(workers), "--bind", f"127.0.0.1:{port}", "--timeout", "30", "--access-logfile", "-",
    ]  # fmt: skip
    if threads > 1:
        command += ["--worker-class", "gthread", "--threads", str(threads)]
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"gunicorn exited with {server.returncode}; see {log_path}")
                try:
                    if _post(port, NOOP_PATH, b"{}", signed=False)[0] == 204:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not answer within 30 s; see {log_path}")
                time.sleep(0.2)
            yield port
        finally:
            _stop(server)


# --- Load generation ----------------------------------------------------------------------------


def _post(port: int, path: str, body: bytes, *, signed: bool) -> tuple[int, float]:
    headers = {"Content-Type": "application/json"}
    if signed:
        # Signed at send time, as Retell does, so a long phase never goes stale.
        headers[retell.SIGNATURE_HEADER] = retell.sign(
            body.decode("utf-8"), api_key=retell.webhook_key(), timestamp_ms=int(time.time() * 1000)
        )
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


@dataclass
class PhaseResult:
    sent: int
    seconds: float
    statuses: Counter[int]
    latencies_ms: list[float]
    answers: dict[int, int] = field(default_factory=dict)  # delivery index → HTTP status (0: no answer)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] if ordered else float("nan")


def closed_loop(port: int, path: str, bodies: Sequence[bytes], *, concurrency: int, signed: bool) -> PhaseResult:
    """As fast as `concurrency` connections go; stops at PHASE_TIME_LIMIT."""
    next_index = itertools.count()
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    answers: dict[int, int] = {}
    deadline = time.monotonic() + PHASE_TIME_LIMIT

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                index = next(next_index)
            if index >= len(bodies):
                return
            try:
                status, seconds = _post(port, path, bodies[index], signed=signed)
            except (OSError, http.client.HTTPException):
                status, seconds = 0, 0.0
            with lock:
                statuses[status] += 1
                latencies.append(seconds * 1000)
                answers[index] = status

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return PhaseResult(sum(statuses.values()), time.perf_counter() - started, statuses, latencies, answers)


def open_loop(
    port: int, path: str, bodies: Sequence[bytes], *, rate: float, signed: bool, threads: int = 32, time_limit: float = PHASE_TIME_LIMIT
) -> PhaseResult:
    """Request i is due at start + i/rate whatever happened before; latency counts from then."""
    next_index = itertools.count()
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    answers: dict[int, int] = {}
    start = time.perf_counter() + 0.2
    limit = start + time_limit

    def worker() -> None:
        while True:
            with lock:
                index = next(next_index)
            due = start + index / rate
            if index >= len(bodies) or due > limit:
                return
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            try:
                status, _ = _post(port, path, bodies[index], signed=signed)
            except (OSError, http.client.HTTPException):
                status = 0
            finished = time.perf_counter()
            with lock:
                statuses[status] += 1
                latencies.append((finished - due) * 1000)
                answers[index] = status

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return PhaseResult(sum(statuses.values()), time.perf_counter() - start, statuses, latencies, answers)


def wait_processed(call_ids: Sequence[str], *, started: float, timeout: float) -> tuple[float, int]:
    """Until every stored event of these calls is processed: (seconds since `started`, left over)."""
    deadline = time.monotonic() + timeout
    while True:
        pending = 0
        for start in range(0, len(call_ids), 1000):
            pending += WebhookEvent.objects.filter(
                vendor="retell", reference__in=call_ids[start : start + 1000], processed_at__isnull=True
            ).count()
        if pending == 0 or time.monotonic() > deadline:
            return time.perf_counter() - started, pending
        time.sleep(0.25)


# --- Checking what arrived ------------------------------------------------------------------------


def verify(fixture: Fixture, delivered: Sequence[tuple[Delivery, int]]) -> list[str]:
    """Every way an event could have been lost or counted twice; empty when none.

    `delivered` is each request sent with the HTTP status it got. What must hold follows from
    what arrived: every distinct event answered 204 exactly once (its repeats 200) and stored
    once and processed; each call's outcome is the one its delivered events give.
    """
    problems: list[str] = []
    answers: dict[tuple[str, str], Counter[int]] = {}
    for delivery, status in delivered:
        answers.setdefault((delivery.call_id, delivery.event), Counter())[status] += 1
    unanswered = sum(c[0] for c in answers.values())
    if unanswered:
        problems.append(f"{unanswered} requests got no answer")
    errors = sum(n for c in answers.values() for status, n in c.items() if status not in (0, 200, 204))
    if errors:
        problems.append(f"{errors} requests answered with an error")
    accepted = {key for key, c in answers.items() if c[204] or c[200]}
    twice = sum(1 for c in answers.values() if c[204] > 1)
    if twice:
        problems.append(f"{twice} events accepted as new more than once")
    stored: Counter[tuple[str, str]] = Counter()
    unprocessed = 0
    call_ids = sorted({call_id for call_id, _ in answers})
    for start in range(0, len(call_ids), 1000):
        rows = WebhookEvent.objects.filter(vendor="retell", reference__in=call_ids[start : start + 1000])
        for reference, event_type, processed_at, error in rows.values_list("reference", "event_type", "processed_at", "error"):
            stored[(reference, event_type)] += 1
            unprocessed += processed_at is None or bool(error)
    if set(stored) != accepted or any(n != 1 for n in stored.values()):
        problems.append(f"{len(stored)} events stored for {len(accepted)} accepted ({sum(stored.values())} rows)")
    if unprocessed:
        problems.append(f"{unprocessed} stored events not processed")

    expected: dict[str, str] = {}
    for call_id, planned in fixture.planned.items():
        if (call_id, "call_analyzed") in accepted:
            expected[call_id] = planned.outcome
        elif (call_id, "call_ended") in accepted:
            expected[call_id] = planned.ended_only
        else:
            expected[call_id] = ""
    outcomes = dict(CallAttempt.objects.filter(campaign=fixture.campaign).values_list("call_id", "outcome"))
    wrong = sum(1 for call_id, outcome in expected.items() if outcomes.get(call_id) != outcome)
    if wrong:
        problems.append(f"{wrong} attempts without their expected outcome")
    items = dict(QueueItem.objects.filter(campaign=fixture.campaign).values_list("attempts__call_id", "status"))
    misplaced = sum(
        1
        for call_id, outcome in expected.items()
        if items.get(call_id) != (outcome or QueueItem.Status.DIALING)
        # A no-answer may already be back in the queue for its retry.
        and not (outcome == "no_answer" and items.get(call_id) == QueueItem.Status.QUEUED)
    )
    if misplaced:
        problems.append(f"{misplaced} queue items not at their outcome")
    campaign = Campaign.objects.get(pk=fixture.campaign.pk)
    recount = campaign_recount(campaign=campaign)
    counters = {name: getattr(campaign, name) for name in recount}
    if counters != recount:
        problems.append(f"campaign counters {counters} differ from the recount {recount}")
    ledger = Counter(ContactLedgerEntry.objects.filter(client_id__startswith=fixture.prefix).values_list("kind", flat=True))
    attempts = sum(1 for o in expected.values() if o)
    conversations = sum(1 for o in expected.values() if o in ("answered", "transferred"))
    if ledger.get("call_attempt", 0) != attempts or ledger.get("conversation", 0) != conversations:
        problems.append(f"ledger holds {dict(ledger)}; expected {attempts} call attempts and {conversations} conversations")
    return problems


# --- The run ------------------------------------------------------------------------------------------


def run(
    *, calls: int, fixed_calls: int, concurrency: int, workers: int, threads: int, sustain_rate: float, sustain_seconds: float
) -> bool:
    # Other work on the machine moves these figures; the load average says how much there was.
    load_before = os.getloadavg()[0]
    sustain_calls = int(sustain_rate * sustain_seconds) // 2  # two events a call
    fixture = build_fixture(WARMUP_CALLS + calls + fixed_calls + sustain_calls)
    warmup_deliveries: list[Delivery] = []
    throughput_deliveries: list[Delivery] = []
    fixed_deliveries: list[Delivery] = []
    sustain_deliveries: list[Delivery] = []
    for index, attempt in enumerate(fixture.attempts):
        warm = index < WARMUP_CALLS
        n = index if warm else index - WARMUP_CALLS
        deliveries, planned = call_events(attempt, n)
        fixture.planned[deliveries[0].call_id] = planned
        if warm:
            warmup_deliveries.extend(deliveries)
            continue
        if n >= calls + fixed_calls:
            sustain_deliveries.extend(deliveries)
            continue
        if n >= calls:
            fixed_deliveries.extend(deliveries)
            continue
        for delivery in deliveries:
            throughput_deliveries.append(delivery)
            if n % 10 == 3:  # a tenth of the events delivered twice, back to back (concurrently)
                throughput_deliveries.append(delivery)
    duplicates = len(throughput_deliveries) - 2 * calls

    logs = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    try:
        with gunicorn(workers, threads, logs / "gunicorn.log") as port:
            # Warm-up: every worker thread imports, opens its database connection and fills its
            # caches before anything is timed (the no-op view alone would not connect).
            closed_loop(port, NOOP_PATH, [b"{}"] * 50, concurrency=concurrency, signed=False)
            warmup = closed_loop(port, WEBHOOK_PATH, [d.body for d in warmup_deliveries], concurrency=concurrency, signed=True)
            throughput = closed_loop(port, WEBHOOK_PATH, [d.body for d in throughput_deliveries], concurrency=concurrency, signed=True)
            latency = open_loop(port, WEBHOOK_PATH, [d.body for d in fixed_deliveries], rate=FIXED_RATE, signed=True)
            baseline = closed_loop(port, NOOP_PATH, [d.body for d in throughput_deliveries], concurrency=concurrency, signed=True)
            # The worker is its own process type (Procfile `worker`); it starts once the ingest
            # figures are taken, so two CPUs are not split between them while they are, and then
            # runs beside the web tier, as in production, through the sustained load.
            with qcluster(logs / "qcluster.log"):
                sustained = open_loop(
                    port, WEBHOOK_PATH, [d.body for d in sustain_deliveries], rate=sustain_rate, signed=True,
                    time_limit=sustain_seconds + 30,
                )  # fmt: skip
                drained, pending = wait_processed(list(fixture.planned), started=time.perf_counter(), timeout=DRAIN_TIME_LIMIT)
        delivered = [(warmup_deliveries[i], status) for i, status in warmup.answers.items()]
        delivered += [(throughput_deliveries[i], status) for i, status in throughput.answers.items()]
        delivered += [(fixed_deliveries[i], status) for i, status in latency.answers.items()]
        delivered += [(sustain_deliveries[i], status) for i, status in sustained.answers.items()]
        problems = verify(fixture, delivered)
        statuses = warmup.statuses + throughput.statuses + latency.statuses + sustained.statuses
    finally:
        cleanup(fixture)

    ratio = throughput.rate / baseline.rate if baseline.rate else 0.0
    p50, p99 = latency.percentile(50), latency.percentile(99)
    print(
        f"webhook ingest on {connection.vendor} (gunicorn, {workers} {'sync workers' if threads == 1 else f'workers × {threads} threads'}), load from {concurrency} local "
        f"connections, {os.cpu_count()} CPUs shared by server, database and load generator "
        f"(load average {load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after)"
    )
    print(
        f"  throughput      {throughput.rate:7.0f} webhooks/s   {throughput.sent:,} requests "
        f"({duplicates:,} duplicates) in {throughput.seconds:.1f} s; mean {statistics.fmean(throughput.latencies_ms):.1f} ms"
        f"                target ≥ {TARGET_RATE:.0f}/s"
    )
    print(
        f"  at {FIXED_RATE:.0f}/s        p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   ({latency.sent:,} requests, "
        f"achieved {latency.rate:.0f}/s)          target p99 < {TARGET_P99_MS:.0f} ms"
    )
    print(f"  no-op view      {baseline.rate:7.0f} requests/s   ratio {ratio:.2f}                              target ≥ {TARGET_RATIO}")
    sustain_errors = sum(n for status, n in sustained.statuses.items() if status not in (200, 204))
    sustain_held = not sustain_deliveries or (sustained.sent == len(sustain_deliveries) and sustained.rate >= 0.95 * sustain_rate)
    print(
        f"  sustained       {sustained.sent:,} requests at {sustain_rate:.0f}/s for {sustained.seconds:.0f} s with the cluster running "
        f"(achieved {sustained.rate:.1f}/s): p50 {sustained.percentile(50):.1f} ms, p99 {sustained.percentile(99):.1f} ms, "
        f"max {max(sustained.latencies_ms, default=float('nan')):.1f} ms, {sustain_errors} errors     target 0 errors, rate held"
    )
    processed = sum(1 for _, status in delivered if status == 204)
    print(
        f"  processing      {processed:,} stored events processed by the django-q2 cluster "
        f"{drained:.1f} s after the sustained phase ended{'' if not pending else f'; {pending} still pending'}"
    )
    print(f"  answers         {dict(sorted(statuses.items()))}")
    print(f"  correctness     {'0 lost, 0 double-counted' if not problems else '; '.join(problems)}")
    ok = (
        not problems
        and not pending
        and throughput.rate >= TARGET_RATE
        and p99 < TARGET_P99_MS
        and ratio >= TARGET_RATIO
        and throughput.sent == len(throughput_deliveries)
        and latency.sent == len(fixed_deliveries)
        and sustain_errors == 0
        and sustain_held
    )
    print(f"  {'PASS' if ok else 'MISS'}   (server logs: {logs})")
    return ok


def main(argv: Sequence[str] = ()) -> bool:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls in the throughput phase (2 events each)")
    parser.add_argument("--fixed-calls", type=int, default=500, help="calls in the fixed-rate phase (2 events each)")
    # More connections than server threads, so the server is never idle waiting for the client.
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    # A webhook mostly waits for its commit: threads overlap those waits (`--threads 1` gives the
    # sync workers the Procfile runs today).
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (1: sync workers)")
    parser.add_argument("--sustain-rate", type=float, default=SUSTAIN_RATE, help="webhooks/s of the sustained phase")
    parser.add_argument("--sustain-seconds", type=float, default=SUSTAIN_SECONDS, help="length of the sustained phase (0 skips it)")
    args = parser.parse_args(list(argv))
    if connection.vendor != "postgresql":
        return _rerun_on_postgres(list(argv))
    return run(
        calls=args.calls, fixed_calls=args.fixed_calls, concurrency=args.concurrency, workers=args.workers, threads=args.threads,
        sustain_rate=args.sustain_rate, sustain_seconds=args.sustain_seconds,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
