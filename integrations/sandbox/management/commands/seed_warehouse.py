from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.http import IntegrationError
from integrations.warehouse import sample
from integrations.warehouse import client as warehouse


class Command(BaseCommand):
    help = (
        "Builds the local sample warehouse: the billing_queue table the default queue SQL reads, "
        "with synthetic clients (fictional 555-01xx numbers), and the history table."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clients", type=int, default=2000, help="How many clients (default 2000).")
        parser.add_argument("--seed", type=int, default=1, help="Same seed, same data (default 1).")
        parser.add_argument(
            "--dirty",
            action="store_true",
            help=f"Make one row in {sample.DIRTY_EVERY} bad (invalid phone, unknown segment, missing values...).",
        )
        parser.add_argument("--history-table", default=warehouse.DEFAULT_HISTORY_TABLE, help="History table to create if missing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["clients"] < 0:
            raise CommandError("--clients must be zero or more")
        try:
            report = sample.seed_sample_warehouse(
                clients=options["clients"], seed=options["seed"], dirty=options["dirty"], history_table=options["history_table"]
            )
        except IntegrationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Sample warehouse {report.warehouse}: {report.rows_written} clients in {report.queue_table} "
            f"(seed {report.seed}; {report.states} states, {report.time_zones} time zones recorded; "
            f"{report.resolved_rows} with the balance resolved)"
        )
        if report.dirty:
            bad = sum(report.dirty_rows.values())
            kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(report.dirty_rows.items()))
            self.stdout.write(f"  bad rows: {bad} ({kinds})")
        self.stdout.write(f"  history table: {report.history_table}")
        self.stdout.write(self.style.SUCCESS(f"Done in {report.elapsed_seconds:.2f} s"))
