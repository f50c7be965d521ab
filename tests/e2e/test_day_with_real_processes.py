"""A 500-client sandbox day on real processes: gunicorn (2 workers) and a django-q2 cluster,
lived through as a supervisor meets it, through the stop and the flush.

Nothing runs in the test process but `manage.py` commands, HTTP and Chromium: the portal and its
workers share a fresh database (SQLite file, or a new PostgreSQL database when DATABASE_URL points
at PostgreSQL), the simulators call back over HTTP, and the clock runs 600 times faster than real
time for every process. The invariants are read from `manage.py campaign status --checks`. Before
the stop and after the flush, Chromium reads the day's dashboard and three client timelines (a
transfer, a voicemail, a dispute): the finished day still shows its tiles, batches and skipped
reasons, and every timeline reads the same. The reconciled file is checked against the warehouse
history, and an inbound call from a client with no touchpoint that day gets their amount and
transfer number.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import csv
import sqlite3

import pytest
import requests
from playwright.sync_api import Page

from tests.browser.conftest import page  # noqa: F401 - fixture
from tests.browser.browsing import log_in, pages_review, screenshot

ROOT = Path(__file__).resolve().parents[2]
SPEED = 600
CLIENTS = 500

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'portal.sqlite3'}"
        return
    import psycopg

    name = f"billing_dialer_e2e_{uuid.uuid4().hex[:8]}"
    admin_url = configured.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield configured.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


def _query(env: dict[str, str], code: str) -> Any:
    """Run Python in `manage.py shell` and read back the JSON it prints last."""
    output = _manage(env, "shell", "-c", code)
    return json.loads(output.strip().splitlines()[-1])


PICK_CLIENTS = """
import json
from campaigns.models import CallAttempt, FollowUpTask
picked = {}
for outcome in ("transferred", "voicemail"):
    picked[outcome] = CallAttempt.objects.filter(outcome=outcome).exclude(client_id="").values_list("client_id", flat=True).first()
picked["dispute"] = FollowUpTask.objects.filter(kind="dispute").exclude(client_id="").values_list("client_id", flat=True).first()
print(json.dumps(picked))
"""

SETTLED = """
import json
from campaigns.models import WebhookEvent
from integrations.sandbox.models import SimulatedDelivery
print(json.dumps({"deliveries": SimulatedDelivery.objects.filter(status="pending").count(),
                  "events": WebhookEvent.objects.filter(processed_at=None).count()}))
"""

# A client the day did not queue (no touchpoint on their day past due), with their routing.
# What the day's money and Grace's live tools came to.
MONEY_AND_TOOLS = """
import json
from django.db.models import Sum
from campaigns.models import Callback, LiveToolCall, Payment
tools = LiveToolCall.objects
print(json.dumps({
    "payments": Payment.objects.count(),
    "recovered": str(Payment.objects.aggregate(s=Sum("amount"))["s"] or 0),
    "verified": tools.filter(name="verify_identity", result="verified").count(),
    "not_verified": tools.filter(name="verify_identity", result__in=["failed", "locked"]).count(),
    "disclosed": tools.filter(name="lookup_account", result="disclosed").count(),
    "links_sent": tools.filter(name="send_payment_link", result="sent").count(),
    "callbacks": Callback.objects.count(),
}))
"""

# The callbacks booked for a time the day has reached: each dialed as a call of its own, or given
# up with the reason (a payment since, a suppression); none still waiting on the release loop.
# Grace books "in 2 hours" on the call, two simulated hours being seconds of this day; the ones
# only the analysis asked for are for tomorrow.
CALLBACKS = """
import datetime as dt, json
from integrations import clock
from campaigns.models import Callback
reached = Callback.objects.filter(due_at__lte=clock.now() - dt.timedelta(minutes=15))
print(json.dumps({
    "dialed": reached.filter(status="placed", attempt__kind="callback").exclude(attempt__call_id=None).count(),
    "waiting": reached.filter(status__in=["scheduled", "dialing"]).count(),
    "booked": Callback.objects.count(),
}))
"""

UNQUEUED = """
import json
from campaigns.models import Account, QueueItem
from cadences.selectors import phase_on_day
from cadences.models import team_for_phase
account = Account.objects.exclude(client_id__in=QueueItem.objects.values("client_id")).exclude(amount_due=None).select_related("segment").first()
phase = phase_on_day(segment=account.segment, day=account.days_past_due)
number = account.segment.resurrection_transfer_number if team_for_phase(phase) == "resurrection" else account.segment.billing_transfer_number
print(json.dumps({"phone": account.phone, "amount": f"{account.amount_due:,.2f}", "transfer_number": number,
                  "shared": Account.objects.filter(phone=account.phone).count() > 1}))
"""


def _timeline_text(page: Page, base: str, client_id: str) -> str:
    page.goto(f"{base}/dashboard/clients/{client_id}/")
    return page.locator("ol.timeline").inner_text()


def _signed_inbound(base: str, phone: str) -> dict[str, str]:
    """The inbound-call lookup as Retell sends it, signed with the key the portal verifies with
    (the sandbox's development key: no Retell key is configured for the day)."""
    from integrations.retell import client as retell

    body = json.dumps({"event": "call_inbound", "call_inbound": {"from_number": phone, "to_number": "+12125550100", "call_id": "call_e2e_inbound"}})
    header = retell.sign(body, api_key=retell.webhook_key(), timestamp_ms=int(time.time() * 1000))
    response = requests.post(
        f"{base}/webhooks/retell/inbound/", data=body, timeout=20,
        headers={"Content-Type": "application/json", retell.SIGNATURE_HEADER: header},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()["call_inbound"]["dynamic_variables"]


def _status(env: dict[str, str], *, checks: bool = False) -> dict[str, Any]:
    return json.loads(_manage(env, "campaign", "status", "--date", env["CAMPAIGN_DATE"], *(["--checks"] if checks else [])))


def _main_pages(picked: dict[str, str]) -> list[tuple[str, str]]:
    """The pages a supervisor works from, and the timelines of the clients the day followed."""
    return [
        ("dashboard", "/dashboard/"), ("kpis", "/dashboard/kpis/"), ("clients", "/dashboard/clients/"),
        ("follow-ups", "/dashboard/follow-ups/"), ("call-reviews", "/dashboard/reviews/"), ("admin", "/admin/"),
        *((f"timeline-{kind}", f"/dashboard/clients/{client_id}/") for kind, client_id in picked.items()),
    ]  # fmt: skip


def _start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_a_sandbox_day_on_gunicorn_and_qcluster_keeps_every_invariant(database_url: str, tmp_path: Path, page: Page) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDBOX_CLOCK_", "PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        DATABASE_URL=database_url,
        WAREHOUSE_URL=f"sqlite:///{tmp_path / 'warehouse.sqlite3'}",
        RECONCILED_FILE_DIR=str(tmp_path / "reconciled"),
        SANDBOX_APP_URL=base,
        PUBLIC_BASE_URL=base,
        DEBUG="True",
        LOG_LEVEL="WARNING",
        Q_WORKERS="3",
        DJANGO_SETTINGS_MODULE="billing_dialer.settings",
    )
    _manage(env, "migrate", "--noinput")
    _manage(env, "seed_warehouse", "--clients", str(CLIENTS), "--seed", "7")
    _manage(env, "install_schedules")
    _manage(env, "shell", "-c", "from django.contrib.auth.models import Group, User; u = User.objects.create_user('day.supervisor', password='e2e-day-pass', is_staff=True); u.groups.add(Group.objects.get(name='Supervisors'))")
    # The day ends late enough that its queue drains first even on a busy machine, so the
    # invariants are checked while the day's rows are still there to check them against.
    _manage(env, "shell", "-c", "import datetime as dt; from cadences.models import DialerSettings as D; s = D.load(); s.end_of_day = dt.time(23, 59); s.save()")

    today = dt.datetime.now(ZoneInfo("America/New_York")).date()
    env.update(
        SANDBOX_CLOCK_START=dt.datetime.combine(today, dt.time(8, 0), tzinfo=ZoneInfo("America/New_York")).isoformat(),
        SANDBOX_CLOCK_SPEED=str(SPEED),
        SANDBOX_CLOCK_EPOCH=repr(time.time()),
        CAMPAIGN_DATE=today.isoformat(),
    )
    web = _start(
        # As the Procfile runs it: threads, because in the sandbox the portal is also every vendor,
        # and a request that calls a simulator (a payment link opening its checkout session,
        # Grace texting a link) waits on another request of the same server.
        [
            sys.executable, "-m", "gunicorn", "billing_dialer.wsgi", "--workers", "2", "--threads", "8",
            "--worker-class", "gthread", "--bind", f"127.0.0.1:{port}", "--timeout", "60",
        ],  # fmt: skip
        env,
        tmp_path / "web.log",
    )
    worker = _start([sys.executable, "manage.py", "qcluster"], env, tmp_path / "worker.log")
    try:
        for _ in range(120):
            try:
                if requests.get(f"{base}/admin/login/", timeout=10).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        # The simulators' knobs, as staff set them in the admin (the HTTP controls want a session).
        # A third of the conversations ask for a callback (a tenth by default), so that among the
        # ones Grace books for later the same day some are still allowed to be dialed when their
        # time comes: a payment since, or the day's call cap, rightly stops the others.
        _manage(
            env, "shell", "-c",
            f"from integrations.sandbox.models import SimulatorConfig as C; c = C.load(); c.speed_factor = {SPEED}; "
            "c.conversation_weights = {**c.conversation_weights, 'callback_requested': 0.3}; c.save()",
        )  # fmt: skip

        _manage(env, "campaign", "start", "--date", today.isoformat())
        deadline = time.monotonic() + 420
        status = _status(env)
        while time.monotonic() < deadline:
            status = _status(env)
            assert status["status"] not in ("draft",), f"the load failed: {status['load_error']}"
            if status["status"] == "running" and status["open_items"] == 0 and status["open_sms"] == 0:
                break
            if status["status"] in ("stopping", "stopped", "flushed"):
                pytest.fail(f"the simulated day ended before its queue drained, so its invariants could not be checked: {status}")
            time.sleep(2)
        else:
            pytest.fail(f"the day did not finish in time: {status}")

        # Every webhook delivered and processed, so the timelines are final before the flush.
        for _ in range(120):
            if _query(env, SETTLED) == {"deliveries": 0, "events": 0}:
                break
            time.sleep(1)
        # The sandbox clients paid through Stripe's simulator, and Grace verified (or failed to
        # verify) callers, disclosed balances only after, texted links and booked callbacks.
        money_and_tools = _query(env, MONEY_AND_TOOLS)
        assert all(money_and_tools[k] for k in ("payments", "verified", "not_verified", "disclosed", "links_sent", "callbacks")), money_and_tools
        # The callbacks whose time has come are dialed (the release loop polls every few seconds).
        for _ in range(60):
            callbacks = _query(env, CALLBACKS)
            if callbacks["dialed"] and not callbacks["waiting"]:
                break
            time.sleep(1)
        assert callbacks["dialed"] and not callbacks["waiting"], callbacks
        log_in(page, base, username="day.supervisor", password="e2e-day-pass", next_path="/dashboard/")
        picked = _query(env, PICK_CLIENTS)
        assert all(picked.values()), f"the day produced no transfer, voicemail or dispute to follow: {picked}"
        timelines_before = {kind: _timeline_text(page, base, client_id) for kind, client_id in picked.items()}
        page.goto(f"{base}/dashboard/")
        counters_before = page.locator(".counters").first.inner_text()
        screenshot(page, "e2e-day-dashboard-before-flush")

        # Every main page while the day is still open, as a supervisor reads them.
        assert pages_review(page, base, _main_pages(picked), moment="e2e-during") == []

        before_flush = _status(env, checks=True)
        _manage(env, "campaign", "stop", "--date", today.isoformat())
        failed = [c for c in before_flush["invariants"] if not c["ok"]]
        assert not failed, json.dumps(failed, indent=2)
        assert {c["name"] for c in before_flush["invariants"]} >= {"no_item_dialed_twice", "no_contact_outside_local_window", "ledger_caps_held"}
        assert before_flush["calls_placed"] > 0 and before_flush["sms_sent"] > 0
        while time.monotonic() < deadline + 90:
            status = _status(env, checks=True)
            if status["status"] == "flushed":
                break
            time.sleep(2)
        assert status["status"] == "flushed", status
        failed = [c for c in status["invariants"] if not c["ok"]]
        assert not failed, json.dumps(failed, indent=2)
        assert status["history_rows_in_warehouse"] >= status["flushed_rows"] > 0
        reconciled = tmp_path / "reconciled" / f"reconciled-{status['date']}.csv"
        with reconciled.open(newline="") as handle:
            rows = {row["client_id"]: row for row in csv.DictReader(handle)}
        assert len(rows) > 0
        with sqlite3.connect(tmp_path / "warehouse.sqlite3") as warehouse_db:
            # The sample warehouse's physical name for analytics.billing.dialer_call_history.
            history = warehouse_db.execute(
                "SELECT client_id, record_type, call_status FROM analytics_billing__dialer_call_history WHERE campaign_date = ?",
                [status["date"]],
            ).fetchall()
        for client_id, row in rows.items():
            calls = sum(1 for c, kind, call_status in history if c == client_id and kind == "call" and call_status != "not_dialed")
            texts = sum(1 for c, kind, _ in history if c == client_id and kind == "sms")
            assert (int(row["calls"]), int(row["texts"])) == (calls, texts), client_id

        # The finished day, as a supervisor opens it from the day picker.
        page.goto(f"{base}/dashboard/?date={today.isoformat()}")
        assert page.locator(".counters").first.inner_text() == counters_before
        summary = page.locator(".end-of-day").inner_text()
        assert f"{len(rows)} client rows" in summary and "rows written" in summary
        assert "No batch released" not in page.locator("[data-batches]").inner_text()
        screenshot(page, "e2e-day-dashboard-after-flush")
        for kind, client_id in picked.items():
            assert _timeline_text(page, base, client_id) == timelines_before[kind], kind
        screenshot(page, "e2e-day-timeline-after-flush")
        assert pages_review(page, base, _main_pages(picked), moment="e2e-after") == []

        unqueued = _query(env, UNQUEUED)
        if not unqueued["shared"]:
            variables = _signed_inbound(base, unqueued["phone"])
            assert variables["known_caller"] == "true"
            assert variables["transfer_number"] == unqueued["transfer_number"]
            # The shipped segments verify before disclosing the balance: Grace looks it up after.
            assert (variables["amount_due"], variables["verify_before_balance"]) == ("", "true")
            assert unqueued["amount"]
    finally:
        _stop(worker)
        _stop(web)
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Traceback" not in worker_log, worker_log[-4000:]
