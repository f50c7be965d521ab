from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from campaigns import schedules


class Command(BaseCommand):
    help = "Installs (or updates) every periodic background schedule. Safe to run on every deploy."

    def handle(self, *args: Any, **options: Any) -> None:
        installed = schedules.schedules_install()
        for schedule in installed:
            self.stdout.write(f"  {schedule.name}: {schedule.func} every {schedule.minutes} min")
        self.stdout.write(self.style.SUCCESS(f"{len(installed)} schedules installed"))
