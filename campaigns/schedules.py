"""Every periodic task of the portal, declared once.

`python manage.py install_schedules` (run by the Procfile's release step on every deploy, and by
`make run`) installs this list idempotently — `update_or_create` by name — and removes schedules
of ours that are no longer in it. A campaign's own revalidation schedule is the one exception: it
exists only while that campaign runs, so the queue code installs and removes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django_q.models import Schedule


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str
    minutes: int
    args: str = ""  # django-q's repr of the positional arguments, e.g. "'heymarket'"


PERIODIC: tuple[Periodic, ...] = (
    # End-of-day stop, finishing stopping campaigns, and (re)trying flushes.
    Periodic("campaigns-tick", "campaigns.tasks.campaigns_tick_task", 1),
    # Restarts the release loop of a running campaign whose lease lapsed (it then keeps
    # watching for most of the minute).
    Periodic("release-watchdog", "campaigns.tasks.release_watchdog_task", 1),
    # Sends the texts that are due, replies and promise reminders.
    Periodic("sms-send-due", "campaigns.tasks.sms_send_due_task", 1),
    # Looks up calls still open 15 minutes after creation, so "dialing forever" ends there.
    Periodic("retell-attempts-reconcile", "campaigns.tasks.attempts_reconcile_task", 1),
    # Webhook events whose processing failed (a database restart, say) or never ran, per vendor,
    # retried the next minute so an outcome is late by a minute or two at most.
    Periodic("retell-webhook-events-retry", "campaigns.tasks.webhook_events_retry_task", 1, "'retell'"),
    Periodic("heymarket-webhook-events-retry", "campaigns.tasks.webhook_events_retry_task", 1, "'heymarket'"),
    Periodic("stripe-webhook-events-retry", "campaigns.tasks.webhook_events_retry_task", 1, "'stripe'"),
    # Payments from the warehouse's payments query, for sites without Stripe (when one is stored).
    Periodic("warehouse-payments-poll", "campaigns.tasks.warehouse_payments_poll_task", 5),
    # Partners' client files from the SFTP intake folders (each folder at its own interval).
    Periodic("sftp-intake-poll", "campaigns.tasks.sftp_sources_poll_task", 1),
    # Reconciled files whose delivery to a partner failed, tried again once their pause is over.
    Periodic("reconciled-deliveries-retry", "campaigns.tasks.reconciled_deliveries_retry_task", 1),
    # Settles promises whose date has passed (the warehouse query runs only when one is due).
    Periodic("promises-review", "campaigns.tasks.promise_review_task", 60),
    # Opens a review of the first calls after a cadence change, and fills it as calls end.
    Periodic("call-reviews-sync", "campaigns.tasks.call_reviews_sync_task", 5),
    # Follow-up e-mails (payment links, promise summaries) whose send has not happened yet.
    Periodic("emails-send-due", "campaigns.tasks.emails_send_due_task", 1),
    # Routes new follow-up tasks to their owners and sends the at-once alerts a worker missed
    # or that failed; the rest of the tasks go in the hourly digest.
    Periodic("owner-alerts", "campaigns.tasks.owner_alerts_sweep_task", 1),
    Periodic("owner-alerts-digest", "campaigns.tasks.owner_alerts_digest_task", 60),
    # Prunes records older than the retention (dialer settings), in bounded batches.
    Periodic("records-prune", "campaigns.tasks.records_prune_task", 60),
)

# Schedules an older release installed under names no longer used.
RETIRED_NAMES: tuple[str, ...] = ()


def periodic(name: str) -> Periodic:
    return next(p for p in PERIODIC if p.name == name)


def schedule_install(entry: Periodic) -> Schedule:
    schedule, _ = Schedule.objects.update_or_create(
        name=entry.name,
        defaults={
            "func": entry.func,
            "args": entry.args or None,
            "schedule_type": Schedule.MINUTES,
            "minutes": entry.minutes,
            "repeats": -1,
        },
    )
    return schedule


def schedules_install() -> list[Schedule]:
    """Install (or update) every periodic task; safe to run on every deploy."""
    Schedule.objects.filter(name__in=RETIRED_NAMES).delete()
    return [schedule_install(entry) for entry in PERIODIC]
