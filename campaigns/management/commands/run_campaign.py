from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import threading
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.lifecycle.sandbox_day import SandboxDayError, default_speed, sandbox_day_run


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Runs a whole campaign day end to end against the sandbox vendors on an accelerated clock — "
        "load, release, calls and webhooks over HTTP, SMS, revalidation, stop, flush — then prints a "
        "JSON summary with invariant checks. Exits non-zero when an invariant fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sandbox", action="store_true", required=True, help="Run against the vendor simulators (required).")
        parser.add_argument("--clients", type=int, default=2000, help="Clients in the sample warehouse (default 2000).")
        parser.add_argument("--seed", type=int, default=1, help="Seed of the sample warehouse (default 1).")
        parser.add_argument(
            "--speed",
            type=float,
            default=None,
            help="Simulated seconds per real second (default 1200, slower for days over 3,333 clients: "
            "4,000,000 ÷ clients, so 200 for 20,000, which a 2-core machine keeps up with).",
        )
        parser.add_argument("--date", type=dt.date.fromisoformat, default=None, help="Campaign date (default today).")
        parser.add_argument(
            "--one-process",
            action="store_true",
            help="Run the portal and the workers as threads of this process instead of processes of their own (slower: one core).",
        )
        parser.add_argument("--quiet", action="store_true", help="Print only the JSON summary.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["clients"] <= 0:
            raise CommandError("--clients must be at least 1")
        if options["speed"] is None:
            options["speed"] = default_speed(options["clients"])
        if options["speed"] <= 0:
            raise CommandError("--speed must be positive")

        def progress(text: str) -> None:
            if not options["quiet"]:
                self.stderr.write(text)

        # SIGTERM (`timeout`, a supervisor) ends the day like Ctrl-C does, so the day's own
        # processes are stopped with it rather than left running.
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
        try:
            report = sandbox_day_run(
                clients=options["clients"],
                seed=options["seed"],
                speed=options["speed"],
                date=options["date"],
                processes=not options["one_process"],
                progress=progress,
            )
        except SandboxDayError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if in_main_thread:
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        summary = asdict(report) | {"ok": report.ok}
        self.stdout.write(json.dumps(summary, indent=2, default=str))
        if not report.ok:
            failed = ", ".join(c["name"] for c in report.invariants if not c["ok"])
            self.stderr.write(self.style.ERROR(f"invariant failed: {failed}"))
            sys.exit(1)
