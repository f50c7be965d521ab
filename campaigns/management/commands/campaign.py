from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from integrations import clock
from campaigns.models import Campaign
from campaigns.lifecycle import invariants
from campaigns.lifecycle import campaign as lifecycle

ACTIONS = ("create", "start", "pause", "resume", "stop", "flush", "status")


class Command(BaseCommand):
    help = "Controls a day's campaign from the shell: create, start, pause, resume, stop, flush, or show its status as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=ACTIONS)
        parser.add_argument("--date", type=dt.date.fromisoformat, default=None, help="Campaign date (default: today).")
        parser.add_argument("--checks", action="store_true", help="With status: add the invariant checks.")

    def handle(self, *args: Any, **options: Any) -> None:
        date = options["date"] or timezone.localdate(clock.now())
        action = options["action"]
        campaign = Campaign.objects.filter(date=date).first()
        if action in ("create", "start") and campaign is None:
            campaign = lifecycle.campaign_create(date=date)
            self.stderr.write(f"created {campaign}")
        if campaign is None:
            raise CommandError(f"There is no campaign for {date.isoformat()}.")
        try:
            if action == "start":
                lifecycle.campaign_start(campaign=campaign)
            elif action == "pause":
                lifecycle.campaign_pause(campaign=campaign, reason="paused from the shell")
            elif action == "resume":
                lifecycle.campaign_resume(campaign=campaign)
            elif action == "stop":
                lifecycle.campaign_stop(campaign=campaign, reason="manual")
            elif action == "flush":
                campaign = lifecycle.campaign_flush(campaign=campaign)
                if campaign.flush_error:
                    raise CommandError(f"Flush failed: {campaign.flush_error}")
        except lifecycle.CampaignStateError as exc:
            raise CommandError(str(exc)) from exc
        campaign.refresh_from_db()
        if action != "status":
            self.stderr.write(f"{campaign}: {campaign.get_status_display()}")
            return
        status: dict[str, Any] = {
            "date": campaign.date.isoformat(),
            "status": campaign.status,
            "queued": campaign.rows_inserted,
            "open_items": campaign.items.filter(status__in=["queued", "releasing", "dialing", "sms_scheduled"]).count(),
            "open_sms": campaign.items.filter(sms_status__in=["pending", "scheduled", "sending"]).count(),
            "load_error": campaign.load_error,
            "flush_error": campaign.flush_error,
            "halt_reason": campaign.halt_reason,
            "flushed_rows": campaign.flushed_rows,
            **{
                name: getattr(campaign, name)
                for name in ("calls_placed", "answered", "voicemail", "transferred", "no_answer", "failed", "sms_sent", "skipped", "ineligible")
            },
        }
        if options["checks"]:
            if campaign.status == Campaign.Status.FLUSHED:
                rows = lifecycle.history_rows_in_warehouse(date=campaign.date)
                status["history_rows_in_warehouse"] = rows
                checks = [invariants.check_cleaned_after_flush(campaign=campaign, history_rows=rows)]
            else:
                checks = invariants.checks_before_flush(campaign=campaign)
            status["invariants"] = invariants.as_dicts(checks)
        self.stdout.write(json.dumps(status, indent=2))
