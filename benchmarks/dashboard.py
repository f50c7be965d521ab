"""Dashboard and API response times with a 100k-item campaign (PostgreSQL is the target).

A synthetic day is bulk-created straight into the database DATABASE_URL names: one running
campaign of BENCH_ITEMS queue items (default 100,000) spread over the default cadences' segments,
phases and ring groups, in the statuses a busy afternoon has (38 % still queued, the rest
dialing, answered, voicemail, transferred, no answer, failed, texted, skipped or ineligible),
with ~40k call attempts through the day, ~23k texts, release batches, alerts, promises to pay,
follow-up tasks, gate decisions, and 30 days of stored daily KPIs. Tables are VACUUM ANALYZEd
after the load, as autovacuum would do.

The project is then served by gunicorn (2 workers) on a free local port (the sandbox Dialflow
answers the availability lookups, cached a few seconds as in production) and every dashboard and API
endpoint is requested BENCH_REQUESTS times (default 30) after a warm-up, like a browser would:
session cookie for the pages, a token for the API. Printed per endpoint: p50, p95 and max
latency, and the number of SQL queries one request makes (which must not depend on the size of
the day). Target: p95 under 300 ms for every endpoint. The whole-day scans behind the charts and
today's KPIs are cached for 30 s / 60 s; their uncached cost is printed too.

The campaign is dated in 2099 and the portal's clock is set to that day for the run, so a real
campaign of today is never touched; everything created is deleted at the end.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from integrations import clock
from cadences.models import CadenceStep, Phase
from cadences.roles import SUPERVISORS
from campaigns.dashboard import selectors
from campaigns.models import (
    Alert,
    CallAttempt,
    Campaign,
    ContactLedgerEntry,
    DailyKpi,
    FollowUpTask,
    GateDecision,
    PromiseToPay,
    QueueItem,
    ReleaseBatch,
    SmsMessage,
)
from campaigns.metrics import kpis

TARGET_P95_MS = 300.0
BENCH_DAY = dt.date(2099, 12, 10)
NY = ZoneInfo("America/New_York")
PREFIX = "BENCHDASH-"
USERNAME = "bench-dashboard-supervisor"
ROOT = Path(__file__).resolve().parent.parent
S = QueueItem.Status
O = CallAttempt.Outcome

# Status of item i by i % 100, as a busy afternoon looks.
STATUS_BANDS: list[tuple[int, str]] = [
    (38, S.QUEUED), (39, S.RELEASING), (40, S.DIALING), (50, S.ANSWERED), (63, S.VOICEMAIL), (66, S.TRANSFERRED),
    (78, S.NO_ANSWER), (80, S.FAILED), (90, S.SMS_SENT), (92, S.SMS_SCHEDULED), (97, S.SKIPPED), (100, S.INELIGIBLE),
]
SKIP_REASONS = ("contact_cap", "window_closed", "suppressed", "contacted_inbound_today", "conversation_blackout")
OUTCOME_OF = {S.ANSWERED: O.ANSWERED, S.VOICEMAIL: O.VOICEMAIL, S.TRANSFERRED: O.TRANSFERRED, S.NO_ANSWER: O.NO_ANSWER, S.FAILED: O.FAILED}


def _items() -> int:
    return int(os.environ.get("BENCH_ITEMS", "100000"))


def _requests() -> int:
    return int(os.environ.get("BENCH_REQUESTS", "30"))


def _status_of(n: int) -> str:
    band = n % 100
    return next(status for limit, status in STATUS_BANDS if band < limit)


def _at(hour: float) -> dt.datetime:
    return dt.datetime.combine(BENCH_DAY, dt.time(8), tzinfo=NY) + dt.timedelta(hours=hour)


# --- the synthetic day ----------------------------------------------------------------------


def cleanup() -> None:
    """Remove everything a run (or an interrupted run) created, with set-based deletes."""
    ids = list(Campaign.objects.filter(date=BENCH_DAY).values_list("pk", flat=True))
    with transaction.atomic(), connection.cursor() as cursor:
        if ids:
            marks = ", ".join(["%s"] * len(ids))
            for model in (GateDecision, CallAttempt, SmsMessage, ReleaseBatch, Alert, QueueItem):
                table = connection.ops.quote_name(model._meta.db_table)
                cursor.execute(f"DELETE FROM {table} WHERE campaign_id IN ({marks})", ids)
            Campaign.objects.filter(pk__in=ids).delete()
        for model in (PromiseToPay, FollowUpTask, ContactLedgerEntry, GateDecision):
            model.objects.filter(client_id__startswith=PREFIX).delete()
        DailyKpi.objects.filter(date__gt=BENCH_DAY - dt.timedelta(days=40), date__lte=BENCH_DAY).delete()
    Token.objects.filter(user__username=USERNAME).delete()
    get_user_model().objects.filter(username=USERNAME).delete()


def build_day(items: int) -> tuple[Campaign, str]:
    steps = list(CadenceStep.objects.filter(active=True).exclude(action_type="SMS").select_related("segment").order_by("segment_id", "day"))
    if not steps:
        raise RuntimeError("No cadence steps in the database: run `python manage.py migrate` first.")
    campaign = Campaign.objects.create(date=BENCH_DAY, status=Campaign.Status.RUNNING, started_at=_at(0), rows_read=items, rows_inserted=items)

    rows = []
    for n in range(items):
        step = steps[n % len(steps)]
        routing = step.segment.routing(step.day)
        status = _status_of(n)
        rows.append(
            QueueItem(
                campaign=campaign, client_id=f"{PREFIX}{n:07d}", client_name=f"Bench Client {n}",
                phone=f"+1{212 + n % 7}555{n % 10000:04d}", segment=step.segment, step=step, days_past_due=step.day,
                phase=step.phase, action_type=step.action_type, team=routing["team"], ring_group=routing["ring_group"],
                transfer_number=routing["transfer_number"], inbox_id=routing["inbox_id"], amount_due=Decimal("250.00"),
                state="NY", timezones="America/New_York", status=status,
                skip_reason=SKIP_REASONS[n % len(SKIP_REASONS)] if status == S.SKIPPED else "",
                call_attempts=1 if status in OUTCOME_OF or status == S.DIALING else 0,
            )
        )
    QueueItem.objects.bulk_create(rows, batch_size=5000)
    created = list(QueueItem.objects.filter(campaign=campaign).order_by("pk").values_list("pk", "client_id", "phone", "status", "inbox_id"))

    attempts, texts, promises, tasks, decisions = [], [], [], [], []
    for i, (pk, client_id, phone, status, inbox) in enumerate(created):
        when = _at((i % 720) / 60)  # spread over 08:00–20:00
        if status in OUTCOME_OF or status == S.DIALING:
            call_id = f"call_bench_{uuid.uuid4().hex}"
            attempts.append(
                CallAttempt(
                    campaign=campaign, queue_item_id=pk, call_id=call_id, to_number=phone, from_number="+12125550100",
                    status=CallAttempt.Status.ONGOING if status == S.DIALING else CallAttempt.Status.ENDED,
                    outcome=OUTCOME_OF.get(status, ""), started_at=when, duration_ms=60_000,
                    custom_analysis={"right_party": i % 9 != 0},
                )
            )
            if status == S.ANSWERED and i % 5 == 0:
                promises.append(
                    PromiseToPay(client_id=client_id, phone=phone, segment_name=rows[i].segment.name, phase=rows[i].phase,
                                 amount=Decimal("120.00"), promised_date=BENCH_DAY + dt.timedelta(days=7), call_id=call_id)
                )
            if status == S.ANSWERED and i % 10 == 1:
                tasks.append(
                    FollowUpTask(kind=FollowUpTask.Kind.DISPUTE, client_id=client_id, phone=phone, due_at=when + dt.timedelta(hours=4), source_ref=call_id)
                )
        if status in (S.SMS_SENT, S.VOICEMAIL):
            texts.append(
                SmsMessage(local_id=f"sms-bench-{uuid.uuid4().hex}", campaign=campaign, queue_item_id=pk, client_id=client_id, phone=phone,
                           inbox_id=inbox, text="Hi, please call us back. Reply STOP to opt out.", status=SmsMessage.Status.SENT, sent_at=when)
            )
        if status == S.SKIPPED:
            decisions.append(
                GateDecision(client_id=client_id, campaign=campaign, campaign_date=BENCH_DAY, queue_item_id=pk, channel="call",
                             rule="weekly_call_cap", detail="7 call attempts in the last 7 days (cap 7).", inputs={"attempts": 7}, decided_at=when)
            )
    CallAttempt.objects.bulk_create(attempts, batch_size=5000)
    SmsMessage.objects.bulk_create(texts, batch_size=5000)
    PromiseToPay.objects.bulk_create(promises, batch_size=5000)
    FollowUpTask.objects.bulk_create(tasks, batch_size=5000)
    GateDecision.objects.bulk_create(decisions, batch_size=5000)
    ring_groups = sorted({r.ring_group for r in rows})
    ReleaseBatch.objects.bulk_create(
        [ReleaseBatch(campaign=campaign, ring_group=ring_groups[n % len(ring_groups)], available_agents=3, size=3) for n in range(400)]
    )
    Alert.objects.create(campaign=campaign, level=Alert.Level.ERROR, source="retell", message="Retell answered 429 (concurrency); retrying")

    figures = [
        DailyKpi(date=BENCH_DAY - dt.timedelta(days=d), segment_name=name, phase=phase, queued=500, calls_placed=400, answered=80,
                 right_party_contacts=70, voicemail=150, transferred=12, no_answer=140, failed=18, sms_sent=200, promises=15,
                 promises_kept=6, amount_promised=Decimal("1800.00"), amount_recovered=Decimal("700.00"), disputes=2, opt_outs=3)
        for d, name, phase in itertools.product(range(1, 31), sorted({s.segment.name for s in steps}), [p for p, _ in Phase.choices])
    ]
    DailyKpi.objects.bulk_create(figures, batch_size=5000)
    if connection.vendor == "postgresql":
        # What autovacuum does soon after a bulk load: statistics, and the visibility map that
        # lets counts be answered from an index alone.
        with connection.cursor() as cursor:
            for model in (QueueItem, CallAttempt, SmsMessage, PromiseToPay, FollowUpTask, GateDecision, ReleaseBatch, DailyKpi):
                cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    print(
        f"day built: {len(rows):,} items, {len(attempts):,} call attempts, {len(texts):,} texts, {len(promises):,} promises, "
        f"{len(tasks):,} tasks, {len(decisions):,} gate decisions, {len(figures):,} daily KPI rows"
    )
    return campaign, created[len(created) // 2][1]


# --- serving and measuring ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served_app() -> Iterator[str]:
    """The portal under gunicorn (2 sync workers, as the Procfile runs it) on a free local port.

    A real server matters here: its workers keep their database connections between requests
    (CONN_MAX_AGE), as production does. The sandbox Dialflow the dashboard asks is served by the
    same server, and the portal's clock (set to the benchmark day) reaches it through the
    environment.
    """
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SANDBOX_APP_URL": base, "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "billing_dialer.settings"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "billing_dialer.wsgi", "--workers", "2", "--bind", f"127.0.0.1:{port}", "--timeout", "60"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # In-process requests (the query counts) ask the same sandbox Dialflow.
    old_app_url = settings.SANDBOX_APP_URL
    settings.SANDBOX_APP_URL = base
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/admin/login/", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("gunicorn did not start serving the portal")
            time.sleep(0.2)
        yield base
    finally:
        settings.SANDBOX_APP_URL = old_app_url
        server.terminate()
        server.wait(timeout=30)


def cold_computations(campaign: Campaign) -> dict[str, float]:
    """What the caches save: the whole-day scans behind the charts and today's KPIs."""
    status = selectors.campaign_status(campaign=campaign, with_free_agents=False)

    def timed(compute: Callable[[], object]) -> float:
        runs = []
        for _ in range(5):
            cache.clear()
            started = time.perf_counter()
            compute()
            runs.append((time.perf_counter() - started) * 1000)
        return statistics.median(runs)

    return {
        "today's KPI figures (every 60 s)": timed(lambda: kpis.campaign_kpi_figures(campaign=campaign)),
        "outcome mix through the day (every 30 s)": timed(lambda: selectors.outcome_mix_by_hour(campaign=campaign)),
        "funnel's promise count (every 30 s)": timed(lambda: selectors.campaign_funnel(status=status)),
        "live counters (every request)": timed(lambda: selectors.campaign_status(campaign=campaign, with_free_agents=False)),
    }


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(session: requests.Session, url: str, count: int) -> dict[str, float]:
    for _ in range(3):
        session.get(url, timeout=30).raise_for_status()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = session.get(url, timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return {"p50": statistics.median(times), "p95": _percentile(times, 0.95), "max": max(times)}


def query_count(client: Client, path: str, **headers: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, **headers)
    assert response.status_code == 200, (path, response.status_code)
    return len(queries.captured_queries)


def main() -> bool | None:
    items = _items()
    print(f"database: {connection.vendor} ({connection.settings_dict['NAME']}); items: {items:,}")
    if connection.vendor != "postgresql":
        print("note: the target is stated for PostgreSQL; set DATABASE_URL=postgres://… for the real figures")
    cleanup()
    clock.accelerate(start=dt.datetime.combine(BENCH_DAY, dt.time(15), tzinfo=NY), speed=1.0)
    try:
        started = time.perf_counter()
        campaign, client_id = build_day(items)
        print(f"built in {time.perf_counter() - started:.1f} s")
        user = get_user_model().objects.create_user(USERNAME, password=uuid.uuid4().hex, is_staff=True)
        user.groups.add(Group.objects.get(name=SUPERVISORS))
        token = Token.objects.create(user=user)
        cache.clear()

        endpoints = [
            ("dashboard page", "/dashboard/", "page"),
            ("dashboard live feed", "/dashboard/status/", "page"),
            ("KPI page", "/dashboard/kpis/", "page"),
            ("client timeline", f"/dashboard/clients/{client_id}/", "page"),
            ("API campaigns", "/api/campaigns/", "api"),
            ("API campaign detail", f"/api/campaigns/{campaign.pk}/", "api"),
            ("API queue items, queued", f"/api/queue-items/?campaign={campaign.pk}&status=queued", "api"),
            ("API queue items, segment+phase", f"/api/queue-items/?campaign={campaign.pk}&segment=RED%20Initial&phase=past_due", "api"),
            ("API queue items, one client", f"/api/queue-items/?client_id={client_id}", "api"),
            ("API follow-up tasks", "/api/follow-up-tasks/?status=open", "api"),
            ("API KPIs", "/api/kpis/", "api"),
        ]
        cold = cold_computations(campaign)
        results: list[tuple[str, dict[str, float], int]] = []
        inproc = Client()
        inproc.force_login(user)
        with served_app() as base:
            browser = requests.Session()
            browser.cookies.set(settings.SESSION_COOKIE_NAME, inproc.cookies[settings.SESSION_COOKIE_NAME].value)
            api = requests.Session()
            api.headers["Authorization"] = f"Token {token.key}"
            for label, path, kind in endpoints:
                session = browser if kind == "page" else api
                timing = measure(session, base + path, _requests())
                queries = query_count(inproc, path, HTTP_AUTHORIZATION=f"Token {token.key}") if kind == "api" else query_count(inproc, path)
                results.append((label, timing, queries))
    finally:
        clock.reset()
        cleanup()

    print()
    print(f"{'endpoint':34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}")
    ok = True
    for label, timing, queries in results:
        met = timing["p95"] < TARGET_P95_MS
        ok = ok and met
        print(f"{label:34} {timing['p50']:8.1f} {timing['p95']:8.1f} {timing['max']:8.1f} {queries:8d}  {'ok' if met else 'MISSED'}")
    print(f"target: p95 < {TARGET_P95_MS:.0f} ms for every endpoint with a {items:,}-item campaign")
    print()
    print("computed at most once per interval (in process, median of 5, no cache):")
    for label, ms in cold.items():
        print(f"  {label:56} {ms:8.1f} ms")
    return ok
