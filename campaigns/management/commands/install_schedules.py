from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from campaigns.services import lifecycle, reconcile, release, sms


class Command(BaseCommand):
    help = "Installs (or updates) every periodic background schedule. Safe to run on every deploy."

    def handle(self, *args: Any, **options: Any) -> None:
        schedules = [
            *lifecycle.lifecycle_schedules_install(),
            release.release_schedule_install(),
            sms.sms_schedules_install(),
            *reconcile.webhook_schedules_install(),
        ]
        for schedule in schedules:
            self.stdout.write(f"  {schedule.name}: {schedule.func} every {schedule.minutes} min")
        self.stdout.write(self.style.SUCCESS(f"{len(schedules)} schedules installed"))
