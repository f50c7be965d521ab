"""The portal as real processes for the cases about processes: gunicorn serving the app and its
simulators, and `manage.py qcluster` workers, all on the test's PostgreSQL database."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from django.db import connection
from django.db.models import Count

from cadences.models import DialerSettings
from campaigns.models import CallAttempt, Campaign, QueueItem, WebhookEvent
from integrations.sandbox.models import SimulatedCall, SimulatorConfig
from tests.campaigns.release_factories import dialer_settings, item_fields
from tests.e2e.test_day_with_real_processes import ROOT, _free_port, _start, _stop

from .harness import assert_invariants, call_step

NY = ZoneInfo("America/New_York")


@dataclass
class Portal:
    base: str
    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def qcluster(self, name: str) -> subprocess.Popen[bytes]:
        process = _start([sys.executable, "manage.py", "qcluster"], self.env, self.logs / f"{name}.log")
        self.processes.append(process)
        return process


def database_url() -> str:
    """The test database the test process itself uses, for the processes it starts."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDBOX_", "PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        DATABASE_URL=database_url(),
        SANDBOX_APP_URL=base,
        PUBLIC_BASE_URL=base,
        DEBUG="True",
        LOG_LEVEL="WARNING",
        Q_WORKERS="3",
        CONN_MAX_AGE="0",
        DJANGO_SETTINGS_MODULE="billing_dialer.settings",
    )
    config = SimulatorConfig.load()
    config.auto_dispatch = True
    config.speed_factor = 60
    config.retell_concurrency_limit = 1000
    config.create_error_rate = 0
    config.dialflow_pattern = [50]
    config.save()
    site = Portal(base=base, env=env, logs=tmp_path)
    web = _start(
        [sys.executable, "-m", "gunicorn", "billing_dialer.wsgi", "--workers", "2", "--bind", f"127.0.0.1:{port}", "--timeout", "60"],
        env,
        tmp_path / "web.log",
    )
    site.processes.append(web)
    try:
        wait_for(lambda: _answers(f"{base}/admin/login/"), timeout=60, what="the portal to answer")
        yield site
    finally:
        for process in reversed(site.processes):
            _stop(process)
        _other_sessions_ended(timeout=20)
        connection.close()


def _other_sessions_ended(*, timeout: float) -> None:
    """Wait for the stopped processes' database sessions to end, so the test database can be
    dropped at teardown (a SIGKILLed worker's session ends a moment after the process)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.5) -> float:
    """Seconds until `condition` held; fails the test after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


def daytime_zone() -> str:
    """A zone where it is now early afternoon. The processes run on the wall clock and the gate
    allows 08:00-21:00 local only, so the clients live where that holds at whatever hour the
    suite runs (no US zone does between 11:00 and 12:00 UTC)."""
    offset = (14 - dt.datetime.now(dt.timezone.utc).hour + 12) % 24 - 12  # local = UTC + offset
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # Etc/GMT signs are inverted


def running_campaign(count: int, *, calls_per_second: float) -> Campaign:
    """Today's running campaign (real time: the processes run on the wall clock) of `count` calls."""
    dialer_settings(max_concurrent_calls=30_000, max_call_attempts_per_day=1)
    DialerSettings.objects.update(calls_per_second=calls_per_second)
    today = dt.datetime.now(NY).date()
    campaign = Campaign.objects.create(
        date=today, status=Campaign.Status.RUNNING, batch_size=40, batch_timeout_seconds=5, release_threshold=1,
        end_of_day=dt.time(23, 59), calling_window_start=dt.time(0, 0), calling_window_end=dt.time(23, 59),
    )  # fmt: skip
    step = call_step()
    zone = daytime_zone()
    QueueItem.objects.bulk_create(
        [QueueItem(**item_fields(campaign, step, client_id=f"P{n:05d}", phone=f"+1332555{n:04d}", timezones=zone)) for n in range(count)]
    )
    return campaign


def lease_owner(campaign: Campaign) -> str:
    return Campaign.objects.filter(pk=campaign.pk).values_list("lease_owner", flat=True).get()


def day_done(campaign: Campaign) -> bool:
    open_statuses = [QueueItem.Status.QUEUED, QueueItem.Status.RELEASING, QueueItem.Status.DIALING]
    return not QueueItem.objects.filter(campaign=campaign, status__in=open_statuses).exists()


def assert_each_item_dialed_once(campaign: Campaign, calls: int) -> None:
    """Once the day drained and every webhook was processed: one simulated call per number, one
    attempt per item, and the day's invariants."""
    wait_for(lambda: day_done(campaign), timeout=300, what="every call to be placed and resolved")
    wait_for(lambda: not WebhookEvent.objects.filter(processed_at=None).exists(), timeout=120, what="every webhook to be processed")
    per_number = SimulatedCall.objects.values("to_number").annotate(n=Count("pk"))
    assert per_number.count() == calls and {row["n"] for row in per_number} == {1}
    odd = list(
        QueueItem.objects.filter(campaign=campaign).exclude(call_attempts=1).values("pk", "status", "call_attempts", "skip_reason", "last_outcome")
    )
    assert not odd, {"items": odd, "attempts": list(CallAttempt.objects.filter(queue_item_id__in=[o["pk"] for o in odd]).values("queue_item_id", "status", "outcome", "call_id", "error"))}
    assert_invariants(campaign)


__all__ = ["ROOT", "Portal", "assert_each_item_dialed_once", "day_done", "lease_owner", "portal", "running_campaign", "wait_for"]
