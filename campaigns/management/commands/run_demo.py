from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.lifecycle import campaign as lifecycle
from integrations import modes
from integrations.http import IntegrationError
from integrations.sandbox.models import SimulatorConfig
from integrations.warehouse import client as warehouse
from integrations.warehouse import sample

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-billing-dialer"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _sample_built() -> bool:
    """Is the sample warehouse there? A fresh checkout has no file yet: asking the warehouse
    would only log a 'unable to open database file' error before the file is built."""
    location = warehouse.target()
    if location.dialect == "sqlite" and not Path(location.location).exists():
        return False
    try:
        return warehouse.table_exists(sample.QUEUE_TABLE)
    except IntegrationError:
        return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status < 500)
    except (OSError, ValueError):
        return False


class Command(BaseCommand):
    help = (
        "The local demo behind `make run`: a demo login, the sample warehouse, and today's sandbox "
        "campaign on an accelerated clock, served by the portal and a django-q2 worker. Ctrl-C stops both."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clients", type=int, default=2000, help="Clients in the sample warehouse (default 2000).")
        parser.add_argument("--speed", type=float, default=60.0, help="Simulated seconds per real second (default 60: a day in ~14 minutes).")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        live = [v for v in ("retell", "heymarket", "dialflow") if modes.is_live(v)]
        if live or modes.is_live("warehouse"):
            raise CommandError(f"The demo runs on the sandbox only; live vendors are configured: {', '.join(live) or 'warehouse'}.")
        speed = options["speed"]
        base = f"http://{options['host']}:{options['port']}"
        self._demo_login()
        if not _sample_built():
            self.stdout.write(f"Building the sample warehouse ({options['clients']} clients)…")
            call_command("seed_warehouse", clients=options["clients"], stdout=self.stdout)
        else:
            # A sample built by an earlier release gains the columns the queue query now reads.
            warehouse.ensure_table(sample.QUEUE_TABLE, sample.QUEUE_COLUMNS, key=sample.QUEUE_KEY)
        call_command("install_schedules", stdout=open(os.devnull, "w"))
        SimulatorConfig.objects.filter(pk=SimulatorConfig.load().pk).update(speed_factor=speed, auto_dispatch=True)

        today = timezone.localdate()
        start = dt.datetime.combine(today, dt.time(8, 0), tzinfo=timezone.get_current_timezone())
        env = dict(
            os.environ,
            SANDBOX_CLOCK_START=start.isoformat(),
            SANDBOX_CLOCK_SPEED=repr(speed),
            SANDBOX_CLOCK_EPOCH=repr(time.time()),
            SANDBOX_APP_URL=base,
            PUBLIC_BASE_URL=base,
        )
        self._start_today(today)

        self._banner(base, speed)
        commands = [
            [sys.executable, "manage.py", "qcluster"],
            [sys.executable, "manage.py", "runserver", f"{options['host']}:{options['port']}", "--noreload"],
        ]
        processes: list[subprocess.Popen[bytes]] = []
        # SIGTERM (a supervisor, `timeout`, a closed terminal) stops the children like Ctrl-C does;
        # set before the first child starts, so a signal between two starts orphans neither.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            for command in commands:
                processes.append(subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, start_new_session=True))
            answered = False
            while all(p.poll() is None for p in processes):
                # The portal's and the worker's start-up lines push the first banner off the
                # screen: once the portal answers, say again where it is and how to sign in.
                if not answered and _answers(f"{base}/admin/login/"):
                    answered = True
                    self._banner(base, speed)
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
            self.stdout.write(f"Billing Dialer ran at {base}/ (demo login: {DEMO_USERNAME} / {DEMO_PASSWORD}); `make run` starts it again.")
        finally:
            # A second Ctrl-C or SIGTERM must not cut the cleanup short and orphan a child.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            for process in processes:
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()

    def _banner(self, base: str, speed: float) -> None:
        self.stdout.write(self.style.SUCCESS(f"\nBilling Dialer is running at {base}/"))
        self.stdout.write(f"  demo login: {DEMO_USERNAME} / {DEMO_PASSWORD}")
        self.stdout.write(f"  today's sandbox campaign runs from 08:00 at {speed:g}× speed — watch it on {base}/dashboard/")
        self.stdout.write("  sandbox mode: no real calls or texts are made. Ctrl-C stops the portal and the worker.\n")

    def _demo_login(self) -> None:
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        user.groups.add(*Group.objects.filter(name__in=["Billing managers", "Supervisors"]))

    def _start_today(self, today: dt.date) -> None:
        campaign = Campaign.objects.filter(date=today).first()
        if campaign is not None and campaign.is_sandbox and campaign.status in (Campaign.Status.FLUSHED, Campaign.Status.STOPPED, Campaign.Status.DRAFT):
            # A finished sandbox day of an earlier demo: start today's over so there is something to watch.
            campaign.delete()
            campaign = None
        if campaign is None:
            campaign = lifecycle.campaign_create(date=today)
        if campaign.status == Campaign.Status.DRAFT:
            lifecycle.campaign_start(campaign=campaign)
            self.stdout.write(f"Started {campaign} (the worker loads the queue from the sample warehouse).")
        else:
            self.stdout.write(f"{campaign} is {campaign.get_status_display().lower()}.")
