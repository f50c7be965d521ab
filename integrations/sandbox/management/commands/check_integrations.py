from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from integrations import checks
from integrations.warehouse import client as warehouse


class Command(BaseCommand):
    help = (
        "For each vendor (Retell, HeyMarket, Dialflow, the warehouse): live or sandbox, reachable or "
        "not, and what to do about a problem. Exits with status 1 when any vendor has one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ring-group", default="billing", help="Ring group to ask Dialflow about (default: billing).")
        parser.add_argument("--history-table", default=warehouse.DEFAULT_HISTORY_TABLE, help="History table to look for.")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        results = checks.integration_checks(ring_group=options["ring_group"], history_table=options["history_table"])
        if options["json"]:
            self.stdout.write(json.dumps([{**asdict(r), "ok": r.ok} for r in results], indent=2))
        else:
            for result in results:
                state = "reachable" if result.reachable else "UNREACHABLE"
                line = f"{result.vendor:<10} {result.mode:<8} {state:<11} {result.target}"
                self.stdout.write(self.style.SUCCESS(line) if result.ok else self.style.ERROR(line))
                if result.detail:
                    self.stdout.write(f"           {result.detail}")
                for problem in result.problems:
                    self.stdout.write(self.style.WARNING(f"           ! {problem}"))
            simulated = [r.vendor for r in results if r.mode == "sandbox" and r.vendor != "warehouse"]
            if simulated:
                self.stdout.write(f"Sandbox mode for {', '.join(simulated)}: no real calls or texts are made.")
        if not all(r.ok for r in results):
            raise SystemExit(1)
