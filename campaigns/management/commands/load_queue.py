from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from campaigns.queue import load as queue
from integrations.http import IntegrationError
from campaigns.lifecycle import campaign as lifecycle

BAR_WIDTH = 30


def _bar(progress: queue.LoadProgress) -> str:
    counts = (
        f"{progress.read:,} read · {progress.inserted:,} queued · {progress.rejected:,} rejected · "
        f"{progress.no_touchpoint:,} no touchpoint today"
    )
    if progress.already_queued:
        counts += f" · {progress.already_queued:,} already queued"
    if not progress.total:
        return f"[{'?' * BAR_WIDTH}] {counts}"
    share = min(progress.read / progress.total, 1.0)
    filled = round(share * BAR_WIDTH)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%} of {progress.total:,} · {counts}"


class Command(BaseCommand):
    help = "Loads a day's queue from the warehouse (the stored queue SQL), showing progress per chunk."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", type=dt.date.fromisoformat, help="Campaign date, YYYY-MM-DD (default: today).")
        parser.add_argument("--chunk-size", type=int, default=queue.CHUNK_SIZE, help="Rows per chunk.")

    def handle(self, *args: Any, **options: Any) -> None:
        date: dt.date = options["date"] or timezone.localdate()
        campaign = lifecycle.campaign_create(date=date)
        # The bar goes to stderr, uncoloured; on a terminal it redraws in place, elsewhere (a log,
        # a pipe) it prints one line per chunk.
        self.stderr.style_func = None
        interactive = self.stderr.isatty()
        started = time.monotonic()

        def show(progress: queue.LoadProgress) -> None:
            line = _bar(progress)
            self.stderr.write(("\r" + line) if interactive else line, ending="" if interactive else "\n")
            self.stderr.flush()

        self.stdout.write(f"Loading the queue of {campaign} from the warehouse…")
        try:
            progress = queue.queue_load(campaign=campaign, chunk_size=options["chunk_size"], on_progress=show)
        except (IntegrationError, queue.QueueLoadError) as exc:
            if interactive:
                self.stderr.write("")
            raise CommandError(f"Queue load of {campaign} failed: {exc}") from exc
        if interactive:
            self.stderr.write("")
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"{campaign}: {progress.read:,} rows read, {progress.inserted:,} queued, {progress.rejected:,} rejected, "
                f"{progress.no_touchpoint:,} with no touchpoint today, {progress.already_queued:,} already queued "
                f"({elapsed:.1f} s)."
            )
        )
        if progress.rejected:
            self.stdout.write("Rejected rows and their reasons are on the campaign's admin page (downloadable as CSV).")
