from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.lifecycle import sandbox_day


class Command(BaseCommand):
    help = (
        "One of the processes of a `run_campaign --sandbox` day (it starts them itself): delivers the "
        "simulators' due webhooks and runs the tasks they enqueue, until stopped with SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dispatchers", type=int, default=3, help="Threads delivering the simulators' webhooks.")
        parser.add_argument("--task-workers", type=int, default=sandbox_day.TASK_WORKERS, help="Threads running queued tasks.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["dispatchers"] < 0 or options["task_workers"] < 0 or not (options["dispatchers"] or options["task_workers"]):
            raise CommandError("give at least one dispatcher or task worker, and no negative counts")
        sandbox_day.ensure_sandbox()
        settings.DEBUG = False  # thousands of queries: DEBUG's query log would only slow them down
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        sandbox_day.workers_run(dispatchers=options["dispatchers"], task_workers=options["task_workers"], stop=stop)
