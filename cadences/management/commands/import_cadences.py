from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cadences.services import CadenceImportError, cadences_import


class Command(BaseCommand):
    help = (
        "Loads segments and their cadence steps from a JSON file in export_cadences' format. Everything is "
        "validated first; nothing is written unless the whole file is valid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The JSON file, or - for standard input.")
        parser.add_argument("--dry-run", action="store_true", help="Validate and report what would change; write nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            if path == "-":
                payload = json.load(sys.stdin)
            else:
                with open(path, encoding="utf-8") as handle:
                    payload = json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from exc

        try:
            summary = cadences_import(payload=payload, dry_run=options["dry_run"])
        except CadenceImportError as exc:
            for problem in exc.problems:
                self.stderr.write(f"  - {problem}")
            raise CommandError(str(exc)) from exc

        verb = "Would import" if options["dry_run"] else "Imported"
        self.stdout.write(
            f"{verb}: {summary.segments_created} segment(s) created, {summary.segments_updated} updated; "
            f"{summary.steps_created} step(s) created, {summary.steps_updated} updated, {summary.steps_deleted} deleted, "
            f"{summary.steps_unchanged} unchanged; {len(summary.templates_created)} new template(s)."
        )
        for name in summary.templates_created:
            self.stdout.write(f"  new template: {name}")
