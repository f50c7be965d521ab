from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cadences.services import cadences_reset_defaults


class Command(BaseCommand):
    help = (
        "Restores the shipped content: the five default segments with their cadences, the default SMS templates "
        "and the Massachusetts call limit. Edits staff made to those rows are overwritten."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--yes", action="store_true", help="Confirm: overwrite edits to the default content.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["yes"]:
            raise CommandError("This overwrites staff edits to the default segments and templates; run again with --yes.")
        counts = cadences_reset_defaults()
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {counts['segments']} segments, {counts['steps']} cadence steps and {counts['templates']} templates."
            )
        )
