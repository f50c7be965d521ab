"""django-q2 entry points: each takes ids, fetches, and calls one service."""

from __future__ import annotations

import logging
import os
import socket
import uuid

from django.utils import timezone

from campaigns.calls import release
from campaigns.conversations import promises
from campaigns.lifecycle import campaign as lifecycle
from campaigns.lifecycle import delivery
from campaigns.lifecycle import retention
from campaigns.mail import followups as mail
from campaigns.metrics import reviews
from campaigns.models import Campaign, ReconciledDelivery, WebhookEvent
from campaigns.owners import alerts as owner_alerts
from campaigns.payments import warehouse as warehouse_payments
from campaigns.queue import intake
from campaigns.queue import load as queue
from campaigns.sms import outbound as sms
from campaigns.webhooks import inbox, reconcile
from integrations import clock

log = logging.getLogger(__name__)


def queue_revalidate_task(campaign_id: int) -> int:
    """Scheduled every revalidation interval while a campaign runs."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status not in (Campaign.Status.RUNNING, Campaign.Status.PAUSED):
        # A schedule that outlived its campaign's day (stopped between runs) has nothing to do.
        log.info("revalidation skipped: campaign not running", extra={"campaign_id": campaign_id})
        return 0
    return queue.queue_revalidate(campaign=campaign)


def release_loop_task(campaign_id: int) -> str:
    """One slice of a campaign's release loop; the slice re-enqueues the next one itself."""
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return release.release_loop_run(campaign_id=campaign_id, worker_id=worker_id)


def release_watchdog_task() -> list[int]:
    """Every minute, and watching for most of it: restart the release loop of any running
    campaign whose lease lapsed, so a dead worker's campaign is taken over within seconds."""
    return release.release_watchdog_watch()


def sms_send_due_task() -> dict[str, int]:
    """Every minute: send the texts that are due (and retry replies that did not go out)."""
    report = sms.sms_send_due(now=clock.now())
    return {"claimed": report.claimed, "sent": report.sent, "failed": report.failed, "skipped": report.skipped}


def payment_link_send_task(call_id: str) -> bool:
    """Text the payment link a client asked for on a call, right after its analysis."""
    return sms.payment_link_send(call_id=call_id, now=clock.now())


def sms_reply_send_task(message_id: int) -> bool:
    """Send one reply (opt-out/opt-in confirmation, HELP answer) right after its webhook."""
    return sms.sms_reply_send(message_id=message_id, now=clock.now())


def warehouse_payments_poll_task() -> dict[str, int | str]:
    """Every few minutes: the warehouse payments query, when one is stored."""
    report = warehouse_payments.warehouse_payments_poll(now=clock.now())
    return {"rows": report.rows, "new": report.new, "known": report.known, "rejected": report.rejected, "error": report.error}


def sftp_sources_poll_task() -> dict[str, dict[str, object]]:
    """Every minute: each SFTP intake folder whose interval has passed."""
    reports = intake.sftp_sources_poll(now=clock.now())
    return {
        name: {"loaded": r.loaded, "failed": r.failed, "duplicates": r.duplicates, "waiting": r.waiting, "error": r.error}
        for name, r in reports.items()
    }


def reconciled_delivery_send_task(delivery_id: int) -> str:
    """The first try of a reconciled file's delivery, right after the flush (or a restart)."""
    found = ReconciledDelivery.objects.select_related("campaign", "destination").filter(pk=delivery_id).first()
    if found is None:
        return "gone"
    return delivery.reconciled_delivery_send(delivery=found, now=clock.now()).status


def reconciled_deliveries_retry_task() -> list[int]:
    """Every minute: deliveries whose next try is due."""
    return delivery.reconciled_deliveries_retry(now=clock.now())


def webhook_event_process_task(event_id: int) -> bool:
    """One stored webhook event, right after its webhook was answered."""
    return inbox.webhook_event_process(event_id=event_id, now=clock.now())


def webhook_event_process_by_key_task(vendor: str, dedupe_key: str = "") -> bool:
    """The same, for an event stored together with its task (its id was not known yet)."""
    if not dedupe_key:  # a task queued by the release before the inbox named its vendor
        vendor, dedupe_key = WebhookEvent.Vendor.RETELL, vendor
    return inbox.webhook_event_process_by_key(vendor=vendor, dedupe_key=dedupe_key, now=clock.now())


def attempts_reconcile_task() -> dict[str, int]:
    """Every minute: calls still open 15 minutes after creation are looked up and resolved.

    An attempt's age is real time (it is about Retell's processes), not the sandbox clock."""
    return vars(reconcile.attempts_reconcile(now=timezone.now()))


def webhook_events_retry_task(vendor: str = "") -> int:
    """Every minute: one vendor's (or every vendor's) webhook events whose processing failed are
    processed again. An event's age is about processes, so it is measured in real time."""
    return inbox.webhook_events_retry(now=timezone.now(), vendor=vendor or None)


def promise_review_task() -> dict[str, int]:
    """Hourly: promises whose date has passed are settled against the warehouse."""
    return vars(promises.promise_review_run(now=clock.now()))


def call_reviews_sync_task() -> dict[str, int]:
    """Every 5 minutes: cadence changes open reviews of the first calls, which fill as calls end."""
    return reviews.call_reviews_sync()


def campaign_load_task(campaign_id: int) -> str:
    """Load a starting campaign's queue, then let it run."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status != Campaign.Status.LOADING:
        return "not loading"
    return lifecycle.campaign_load_and_run(campaign=campaign).status


def campaign_finish_task(campaign_id: int) -> str:
    """Close a stopping campaign at once when nothing is in flight (the minute tick retries otherwise)."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return "gone"
    if lifecycle.campaign_finish(campaign=campaign):
        campaign.refresh_from_db()
        if campaign.status == Campaign.Status.STOPPED:
            return lifecycle.campaign_flush(campaign=campaign).status
    return campaign.status


def campaigns_tick_task() -> dict[str, list[int]]:
    """Every minute: end-of-day stop, finishing stopping campaigns, and (re)trying flushes."""
    return lifecycle.campaigns_tick()


def records_prune_task() -> dict[str, object]:
    """Hourly: records older than the retention go, a bounded number per run."""
    return vars(retention.records_prune(now=clock.now()))


def owner_alert_send_task(task_id: int) -> dict[str, int]:
    """Right after a follow-up task opens: route it, and alert its owner if its kind is urgent."""
    report = owner_alerts.owner_alert_send(task_id=task_id, now=clock.now())
    return {"routed": report.routed, "sent": report.sent, "failed": report.failed}


def owner_alerts_sweep_task() -> dict[str, int]:
    """Every minute: route new tasks; send (or retry) the at-once alerts that are due."""
    report = owner_alerts.owner_alerts_sweep(now=clock.now())
    return {"routed": report.routed, "sent": report.sent, "failed": report.failed}


def owner_alerts_digest_task() -> dict[str, int]:
    """Hourly: one digest per owner or team of the tasks not alerted yet."""
    report = owner_alerts.owner_alerts_digest(now=clock.now())
    return {"routed": report.routed, "sent": report.sent, "failed": report.failed, "messages": report.messages}


def promise_summary_email_task(promise_id: int) -> bool:
    """Right after a promise is recorded: its summary by e-mail, where one is called for."""
    return mail.promise_summary_email(promise_id=promise_id, now=clock.now())


def emails_send_due_task() -> int:
    """Every minute: follow-up e-mails not sent yet (a worker down, the mail server refusing)."""
    return mail.emails_send_due(now=clock.now())
