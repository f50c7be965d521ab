"""A whole sandbox day, on an accelerated clock.

The portal serves itself on a loopback port (the vendor simulators live under /sandbox/ and
Retell's and HeyMarket's webhooks come back to /webhooks/), so every call, text and webhook goes
through the real clients over real HTTP. The day's steps run as they do under the workers —
queue load, the release loop, the SMS sender, revalidation, stop and flush — but driven here,
with the clock running `speed` times faster than real time. At the end the invariants are
checked on the rows the day produced.

By default everything runs in this process, in threads. With `processes=True` (what
`run_campaign` does) the portal runs under gunicorn, and the webhook dispatch and the task
workers in a process each, all sharing this process's database and accelerated clock, so the
day uses every core rather than one interpreter's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import pydoc
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import close_old_connections, connections
from django.db.models import Count, Sum
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from integrations import clock
from cadences.models import ActionType, DialerSettings
from campaigns.models import Campaign, Payment, PaymentLink, PromiseToPay, QueueItem
from campaigns.compliance import gate as compliance
from campaigns.lifecycle import invariants
from campaigns.lifecycle import campaign as lifecycle
from campaigns.queue import load as queue
from campaigns.calls import release
from campaigns.sms import outbound as sms
from integrations import modes
from integrations.sandbox import delivery
from integrations.sandbox.models import SimulatorConfig
from integrations.warehouse import client as warehouse
from integrations.warehouse import sample

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

TASK_WORKERS = 2
# The default clock speed: about as fast as a 2-core machine keeps up with the day's calls (a
# 20,000-client day at 200× reached 93% and 99% of its call touchpoints in two runs), at most MAX_SPEED.
MAX_SPEED = 1200.0
CLIENT_SECONDS_PER_SECOND = 4_000_000.0
WEB_WORKERS = 2
WEB_THREADS = 8

# The simulated day: from the first legal minute on the east coast to the campaign's end of day.
DAY_START = dt.time(8, 0)


class SandboxDayError(Exception):
    pass


@dataclass
class DayReport:
    campaign_id: int = 0
    date: str = ""
    clients: int = 0
    speed: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    load: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    sms: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    reach: dict[str, int] = field(default_factory=dict)
    money: dict[str, Any] = field(default_factory=dict)
    rows_flushed: int = 0
    history_rows_in_warehouse: int | None = None
    invariants: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check["ok"] for check in self.invariants)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


class PortalServer:
    """The portal on a loopback port in a background thread (like `runserver`, minus reloading)."""

    def __init__(self) -> None:
        self.httpd = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
        self.httpd.daemon_threads = True
        self.httpd.set_app(WSGIHandler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="portal", daemon=True)

    def __enter__(self) -> PortalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class PortalProcesses:
    """The portal under gunicorn, plus one process delivering the simulators' webhooks and one
    running the day's tasks, all on this process's database and clock (`clock.accelerate`
    exports it to the environment they inherit). Started after the clock is set."""

    def __init__(self, *, dispatchers: int, task_workers: int) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        # The day dispatches the webhooks itself; the web workers must not start their own sender.
        # A sandbox day's own processes serve the simulators, whatever DEBUG the shell had.
        env = dict(os.environ, SANDBOX_APP_URL=self.url, SANDBOX_AUTO_DISPATCH="False", SANDBOX_ENABLED="True")
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        self.commands = [
            [
                sys.executable, "-m", "gunicorn", "billing_dialer.wsgi", "--workers", str(WEB_WORKERS), "--threads", str(WEB_THREADS),
                "--worker-class", "gthread", "--bind", f"127.0.0.1:{port}", "--timeout", "120", "--log-level", "warning",
            ],
            [*manage, "sandbox_day_worker", "--dispatchers", str(dispatchers), "--task-workers", "0"],
            [*manage, "sandbox_day_worker", "--dispatchers", "0", "--task-workers", str(task_workers)],
        ]  # fmt: skip
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> PortalProcesses:
        try:
            for command in self.commands:
                self.processes.append(subprocess.Popen(command, cwd=settings.BASE_DIR, env=self.env, start_new_session=True))
            self._wait_until_serving()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_serving(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        host, port = self.url.removeprefix("http://").split(":")
        while time.monotonic() < deadline:
            self.check(when=" at start")
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise SandboxDayError(f"The portal did not start serving at {self.url} within {timeout:.0f} s")

    def check(self, when: str = "") -> None:
        """Raise when a day process died: its share of the day would silently stop."""
        for command, process in zip(self.commands, self.processes):
            if process.poll() is not None:
                raise SandboxDayError(f"A day process exited{when} (status {process.returncode}): {' '.join(command[:5])}")

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def workers_run(*, dispatchers: int, task_workers: int, stop: threading.Event) -> None:
    """The threads of a day's worker process, until `stop` is set."""
    threads = [threading.Thread(target=_dispatch_worker, args=(stop,), name=f"dispatch-{n}", daemon=True) for n in range(dispatchers)]
    threads += [threading.Thread(target=_task_worker, args=(stop,), name=f"tasks-{n}", daemon=True) for n in range(task_workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def default_speed(clients: int) -> float:
    """Simulated seconds per real second for a day of `clients`: slower for bigger days, whose
    calls would otherwise pile up behind the machine and miss their calling windows."""
    return min(MAX_SPEED, CLIENT_SECONDS_PER_SECOND / max(clients, 1))


def ensure_sandbox() -> None:
    live = [v for v in ("retell", "heymarket", "dialflow") if modes.is_live(v)]
    if live:
        raise SandboxDayError(f"A sandbox day needs every vendor in sandbox mode; live: {', '.join(live)}. Unset their credentials.")
    if modes.is_live("warehouse"):
        raise SandboxDayError("A sandbox day never writes to Databricks; unset DATABRICKS_* to use the local sample warehouse.")


def _warehouse_clients() -> int | None:
    try:
        if not warehouse.table_exists(sample.QUEUE_TABLE):
            return None
        for chunk in warehouse.iter_query(f"SELECT COUNT(*) AS n FROM {sample.QUEUE_TABLE}"):
            return int(chunk[0]["n"])
    except Exception:  # an unreadable sample warehouse is simply rebuilt
        return None
    return None


def _dispatch_worker(stop: threading.Event) -> None:
    """Deliver the simulators' due webhooks (several of these run at once, each claiming its own)."""
    while not stop.is_set():
        try:
            if not delivery.sandbox_dispatch_due(limit=50):
                stop.wait(0.02)
        except Exception:
            log.exception("sandbox webhook dispatch failed")
            close_old_connections()
            stop.wait(0.2)
    connections.close_all()


def _task_worker(stop: threading.Event) -> None:
    """Run the tasks the day enqueues (webhook processing, SMS replies) from the broker, in
    process: a one-process day has no cluster beside it. Each task is claimed by the broker's
    own lock, so several of these never run one task twice."""
    broker = get_broker()
    while not stop.is_set():
        try:
            claimed = broker.dequeue() or []
            for task_id, package in claimed:
                task = SignedPackage.loads(package)
                func = task["func"] if callable(task["func"]) else pydoc.locate(task["func"])
                try:
                    if not callable(func):
                        raise LookupError(f"no task function {task['func']!r}")
                    func(*task.get("args", ()), **task.get("kwargs", {}))
                except Exception:
                    # What a task leaves undone is redone by its own retry (e.g. unprocessed events).
                    log.exception("sandbox day task failed", extra={"func": str(task["func"])})
                broker.acknowledge(task_id)
            if not claimed:
                stop.wait(0.02)
        except Exception:
            log.exception("sandbox day task runner failed")
            close_old_connections()
            stop.wait(0.2)
    connections.close_all()


def _release_worker(campaign_id: int, errors: list[BaseException]) -> None:
    try:
        while Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.RUNNING).exists():
            release.release_loop_run(
                campaign_id=campaign_id,
                worker_id=f"sandbox-day:{threading.get_ident()}",
                slice_seconds=3600,
                reenqueue=False,
            )
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)
        log.exception("release loop failed")
    finally:
        connections.close_all()


def _sms_worker(stop: threading.Event, errors: list[BaseException]) -> None:
    try:
        while not stop.is_set():
            now = clock.now()
            report = sms.sms_send_due(now=now)
            sms.sms_replies_send_due(now=now)
            if not report.claimed:
                stop.wait(0.05)
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)
        log.exception("sms sender failed")
    finally:
        connections.close_all()


def _work_left(campaign: Campaign) -> bool:
    open_statuses = [QueueItem.Status.QUEUED, QueueItem.Status.RELEASING, QueueItem.Status.DIALING, QueueItem.Status.SMS_SCHEDULED]
    return QueueItem.objects.filter(campaign=campaign).filter(status__in=open_statuses).exists() or QueueItem.objects.filter(
        campaign=campaign, sms_status__in=[QueueItem.SmsStatus.PENDING, QueueItem.SmsStatus.SCHEDULED, QueueItem.SmsStatus.SENDING]
    ).exists()


def sandbox_day_run(
    *,
    clients: int,
    seed: int = 1,
    speed: float = MAX_SPEED,
    date: dt.date | None = None,
    dispatchers: int = 3,
    processes: bool = False,
    progress: Progress | None = None,
) -> DayReport:
    """Run one whole sandbox day end to end and return its summary (`processes`: see the module)."""
    ensure_sandbox()
    say = progress or (lambda text: None)
    report = DayReport(clients=clients, speed=speed)
    portal_tz = timezone.get_current_timezone()
    date = date or timezone.localdate()
    if Campaign.objects.filter(date=date).exists():
        raise SandboxDayError(f"A campaign for {date.isoformat()} already exists; pick another day with --date.")

    started = time.monotonic()
    if _warehouse_clients() != clients:
        say(f"seeding the sample warehouse with {clients} clients (seed {seed})")
        sample.seed_sample_warehouse(clients=clients, seed=seed, dirty=False, history_table=DialerSettings.load().history_table)
    report.stages["seed_warehouse_s"] = round(time.monotonic() - started, 2)

    config = SimulatorConfig.load()
    previous_speed, previous_auto = config.speed_factor, config.auto_dispatch
    # The day's threads run thousands of queries each; keeping every one in memory (DEBUG's
    # query log) would only slow them down.
    previous_debug, settings.DEBUG = settings.DEBUG, False
    SimulatorConfig.objects.filter(pk=config.pk).update(speed_factor=speed, auto_dispatch=False)
    previous_app_url = settings.SANDBOX_APP_URL
    day_start = dt.datetime.combine(date, DAY_START, tzinfo=portal_tz)

    serving = functools.partial(_processes_serving if processes else _threads_serving, dispatchers=dispatchers)
    try:
        _run_day(report=report, date=date, day_start=day_start, speed=speed, say=say, serving=serving)
    finally:
        clock.reset()
        settings.SANDBOX_APP_URL = previous_app_url
        settings.DEBUG = previous_debug
        SimulatorConfig.objects.filter(pk=config.pk).update(speed_factor=previous_speed, auto_dispatch=previous_auto)
    report.stages["total_s"] = round(time.monotonic() - started, 2)
    return report


@contextlib.contextmanager
def _threads_serving(*, dispatchers: int) -> Iterator[Callable[[], None]]:
    """The portal, the webhook dispatch and the task workers in threads of this process."""
    stop = threading.Event()
    with PortalServer() as server:
        settings.SANDBOX_APP_URL = server.url
        worker = threading.Thread(
            target=workers_run, kwargs={"dispatchers": dispatchers, "task_workers": TASK_WORKERS, "stop": stop}, name="day-workers", daemon=True
        )
        worker.start()
        try:
            yield lambda: None
        finally:
            stop.set()
            worker.join(timeout=30)


@contextlib.contextmanager
def _processes_serving(*, dispatchers: int) -> Iterator[Callable[[], None]]:
    """The same in processes of their own (see `PortalProcesses`)."""
    with PortalProcesses(dispatchers=dispatchers, task_workers=TASK_WORKERS) as children:
        settings.SANDBOX_APP_URL = children.url
        yield children.check


def _run_day(
    *,
    report: DayReport,
    date: dt.date,
    day_start: dt.datetime,
    speed: float,
    say: Progress,
    serving: Callable[[], contextlib.AbstractContextManager[Callable[[], None]]],
) -> None:
    stage = time.monotonic()
    campaign = lifecycle.campaign_create(date=date)
    report.campaign_id, report.date = campaign.pk, date.isoformat()
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING)
    campaign.refresh_from_db()
    # The queue loads before the first calling minute; the accelerated clock starts after it.
    lifecycle.campaign_load_and_run(campaign=campaign, now=day_start - dt.timedelta(minutes=30), start_release=False)
    campaign.refresh_from_db()
    if campaign.status != Campaign.Status.RUNNING:
        raise SandboxDayError(f"The queue did not load: {campaign.load_error or campaign.status}")
    report.load = {
        "rows_read": campaign.rows_read,
        "queued": campaign.rows_inserted,
        "rejected": campaign.rows_rejected,
        "no_touchpoint_today": campaign.rows_no_touchpoint,
        "call_touchpoints": campaign.items.exclude(action_type=ActionType.SMS).count(),
    }
    report.stages["load_s"] = round(time.monotonic() - stage, 2)
    say(f"loaded {campaign.rows_inserted} touchpoints from {campaign.rows_read} rows ({campaign.rows_rejected} rejected)")

    # Set before the day's processes start, which take the clock from the environment.
    clock.accelerate(start=day_start, speed=speed)
    with serving() as serving_check:
        checks = _run_calling(report=report, campaign=campaign, date=date, say=say, serving_check=serving_check)

    stage = time.monotonic()
    campaign = lifecycle.campaign_flush(campaign=campaign)
    if campaign.status != Campaign.Status.FLUSHED:
        raise SandboxDayError(f"The flush failed: {campaign.flush_error}")
    report.rows_flushed = campaign.flushed_rows
    report.history_rows_in_warehouse = lifecycle.history_rows_in_warehouse(date=date)
    checks.append(invariants.check_cleaned_after_flush(campaign=campaign, history_rows=report.history_rows_in_warehouse))
    report.invariants = invariants.as_dicts(checks)
    report.stages["flush_s"] = round(time.monotonic() - stage, 2)
    say(f"flushed {campaign.flushed_rows} rows; the day is over")


def _money(campaign: Campaign) -> dict[str, Any]:
    """What the day's outreach brought in: payments (net of refunds), the links behind them, and
    the promises made on the day's calls and how many were kept by a payment."""
    payments = Payment.objects.filter(paid_at__date__gte=campaign.date)
    received = payments.aggregate(paid=Sum("amount"), back=Sum("refunded_amount"), held=Sum("disputed_amount"))
    recovered = (received["paid"] or Decimal("0")) - (received["back"] or Decimal("0")) - (received["held"] or Decimal("0"))
    promises = PromiseToPay.objects.filter(campaign_date=campaign.date)
    return {
        "payments": payments.count(),
        "recovered": str(recovered.quantize(Decimal("0.01"))),
        "links_opened": PaymentLink.objects.filter(first_opened_at__date__gte=campaign.date).count(),
        "links_paid": PaymentLink.objects.filter(status=PaymentLink.Status.COMPLETE, completed_at__date__gte=campaign.date).count(),
        "promises_made": promises.count(),
        "promises_kept": promises.filter(status=PromiseToPay.Status.KEPT).count(),
        "promises_partly_kept": promises.filter(status=PromiseToPay.Status.PARTLY_KEPT).count(),
    }


def _run_calling(
    *, report: DayReport, campaign: Campaign, date: dt.date, say: Progress, serving_check: Callable[[], None]
) -> list[invariants.Check]:
    """From the first calling minute to a finished stop; returns the checks made before the flush."""
    stage = time.monotonic()
    dialer = DialerSettings.load()
    errors: list[BaseException] = []
    releaser = threading.Thread(target=_release_worker, args=(campaign.pk, errors), name="release", daemon=True)
    releaser.start()
    stop_sms = threading.Event()
    texter = threading.Thread(target=_sms_worker, args=(stop_sms, errors), name="sms", daemon=True)
    texter.start()
    end_of_day = dt.datetime.combine(date, campaign.end_of_day, tzinfo=timezone.get_current_timezone())
    revalidate_every = dt.timedelta(minutes=dialer.revalidation_interval_minutes)
    next_revalidation = clock.now() + revalidate_every
    last_report = 0.0
    try:
        while True:
            now = clock.now()
            if now >= next_revalidation:
                queue.queue_revalidate(campaign=campaign, now=now)
                next_revalidation = now + revalidate_every
            if time.monotonic() - last_report > 2:
                last_report = time.monotonic()
                serving_check()
                campaign.refresh_from_db()
                say(
                    f"{timezone.localtime(now):%H:%M} placed {campaign.calls_placed} · answered {campaign.answered} · "
                    f"voicemail {campaign.voicemail} · transferred {campaign.transferred} · no answer {campaign.no_answer} · "
                    f"failed {campaign.failed} · sms {campaign.sms_sent} · skipped {campaign.skipped}"
                )
            if errors:
                raise SandboxDayError(f"A worker failed: {errors[0]!r}")
            if now >= end_of_day or not _work_left(campaign):
                break
            time.sleep(0.2)
    finally:
        stop_sms.set()
        texter.join(timeout=60)
    report.stages["calling_s"] = round(time.monotonic() - stage, 2)

    stage = time.monotonic()
    campaign.refresh_from_db()
    lifecycle.campaign_stop(campaign=campaign, reason="end_of_day" if clock.now() >= end_of_day else "day_complete", finish=False)
    releaser.join(timeout=120)
    while not lifecycle.campaign_finish(campaign=campaign, now=clock.now()):
        time.sleep(0.05)
    campaign.refresh_from_db()
    report.outcomes = {
        name: getattr(campaign, name) for name in ("calls_placed", "answered", "voicemail", "transferred", "no_answer", "failed")
    }
    items = QueueItem.objects.filter(campaign=campaign)
    report.sms = dict(items.exclude(sms_status=QueueItem.SmsStatus.NONE).values_list("sms_status").annotate(n=Count("pk")))
    report.sms["sent_total"] = campaign.sms_messages.filter(sent_at__isnull=False).count()
    report.skipped_by_reason = dict(
        items.filter(status__in=[QueueItem.Status.SKIPPED, QueueItem.Status.INELIGIBLE])
        .values_list("skip_reason")
        .annotate(n=Count("pk"))
    )
    # Call touchpoints the day did not get to: still undialed when their calling window closed
    # or the campaign stopped (not those the gate refused for a rule, which is the right outcome).
    calls = items.exclude(action_type=ActionType.SMS)
    report.reach["call_touchpoints_dialed"] = calls.filter(call_attempts__gt=0).count()
    report.reach["call_touchpoints_out_of_time"] = calls.filter(
        status=QueueItem.Status.SKIPPED, skip_reason__in=[compliance.Rule.OUTSIDE_LOCAL_WINDOW, "campaign_stopped"], call_attempts=0
    ).count()
    report.money = _money(campaign)
    checks = invariants.checks_before_flush(campaign=campaign)
    report.stages["stop_s"] = round(time.monotonic() - stage, 2)
    return checks
