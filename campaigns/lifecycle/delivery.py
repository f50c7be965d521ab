"""The day's reconciled file, delivered to each partner's SFTP delivery folder after the flush.

The flush creates one `ReconciledDelivery` per enabled delivery folder, in its own transaction,
and enqueues the first try once it commits. Each try claims its delivery first (a conditional
update), so a retry and the minute sweep never send the same file twice at once. A failed try is
retried with growing pauses (RETRY_DELAYS) by the minute sweep; when the last one fails too, the
delivery is marked failed for good and an alert says so. A supervisor can send it again from the
campaign page once the partner's server is fixed.

The file goes up under a temporary name and is renamed once complete, so the partner never picks
up half a file; sending it again replaces it.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from campaigns.alerts import alert_raise
from campaigns.models import Campaign, ReconciledDelivery, SftpDestination
from integrations import clock
from integrations.http import IntegrationError
from integrations.sftp import client as sftp

log = logging.getLogger(__name__)

Status = ReconciledDelivery.Status

# The pause after each failed try; one try more than pauses, so about 1 h 50 min of trying in all.
RETRY_DELAYS = (
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=15),
    dt.timedelta(minutes=30),
    dt.timedelta(minutes=60),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# A try claimed longer ago than this belongs to a worker that died while sending.
CLAIM_TTL = dt.timedelta(minutes=10)
ALERT_SOURCE = "reconciled-delivery"
TASK = "campaigns.tasks.reconciled_delivery_send_task"


def reconciled_deliveries_create(*, campaign: Campaign, now: dt.datetime | None = None) -> list[ReconciledDelivery]:
    """One delivery per enabled delivery folder (none twice), its first try enqueued on commit."""
    now = now or clock.now()
    created: list[ReconciledDelivery] = []
    for destination in SftpDestination.objects.filter(enabled=True):
        delivery, new = ReconciledDelivery.objects.get_or_create(
            campaign=campaign, destination=destination, defaults={"created_at": now}
        )
        if new:
            created.append(delivery)
    for new_delivery in created:
        _enqueue(new_delivery.pk)
    return created


def _enqueue(delivery_id: int) -> None:
    transaction.on_commit(lambda: async_task(TASK, delivery_id))


def _claim(delivery: ReconciledDelivery, now: dt.datetime) -> bool:
    # Waiting to send goes now; a retry once its pause is over.
    waiting = Q(status=Status.PENDING) | Q(status=Status.RETRYING, next_attempt_at__lte=now)
    abandoned = Q(status=Status.SENDING, claimed_at__lt=now - CLAIM_TTL)
    return bool(
        ReconciledDelivery.objects.filter(pk=delivery.pk)
        .filter(waiting | abandoned)
        .update(status=Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    )


def _file_bytes(campaign: Campaign) -> bytes:
    if not campaign.reconciled_file:
        raise FileNotFoundError("the day has no reconciled file yet (it is written at flush)")
    return (Path(settings.RECONCILED_FILE_DIR) / campaign.reconciled_file).read_bytes()


def reconciled_delivery_send(*, delivery: ReconciledDelivery, now: dt.datetime | None = None) -> ReconciledDelivery:
    """One try: upload the campaign's reconciled file to the delivery folder. Not due, or claimed
    by another worker: nothing happens."""
    now = now or clock.now()
    if not _claim(delivery, now):
        delivery.refresh_from_db()
        return delivery
    delivery.refresh_from_db()
    destination = delivery.destination
    campaign = delivery.campaign
    try:
        data = _file_bytes(campaign)
        remote = sftp.join(destination.path, campaign.reconciled_file)
        with sftp.session(destination.server()) as session:
            sftp.write_bytes(session, remote, data)
    except (IntegrationError, OSError) as exc:
        return _failed(delivery, str(exc) if isinstance(exc, IntegrationError) else f"Reconciled file: {exc}", now)
    ReconciledDelivery.objects.filter(pk=delivery.pk).update(
        status=Status.DELIVERED, delivered_at=now, remote_path=remote, error="", next_attempt_at=None, claimed_at=None
    )
    SftpDestination.objects.filter(pk=destination.pk).update(last_success_at=now, last_error="")
    log.info("reconciled file delivered", extra={"campaign_id": campaign.pk, "destination": destination.name, "attempt": delivery.attempts})
    delivery.refresh_from_db()
    return delivery


def _failed(delivery: ReconciledDelivery, message: str, now: dt.datetime) -> ReconciledDelivery:
    SftpDestination.objects.filter(pk=delivery.destination_id).update(last_error=message)
    if delivery.attempts >= MAX_ATTEMPTS:
        ReconciledDelivery.objects.filter(pk=delivery.pk).update(status=Status.FAILED, error=message, next_attempt_at=None, claimed_at=None)
        alert_raise(
            campaign=delivery.campaign,
            source=ALERT_SOURCE,
            message=(
                f"The reconciled file of {delivery.campaign} could not be delivered to “{delivery.destination}” "
                f"after {delivery.attempts} tries: {message}"
            ),
        )
        log.error("reconciled file delivery failed for good", extra={"campaign_id": delivery.campaign_id, "error": message})
    else:
        retry_at = now + RETRY_DELAYS[delivery.attempts - 1]
        ReconciledDelivery.objects.filter(pk=delivery.pk).update(
            status=Status.RETRYING, error=message, next_attempt_at=retry_at, claimed_at=None
        )
        log.warning(
            "reconciled file delivery failed; will retry",
            extra={"campaign_id": delivery.campaign_id, "error": message, "attempt": delivery.attempts, "retry_at": retry_at.isoformat()},
        )
    delivery.refresh_from_db()
    return delivery


def reconciled_deliveries_retry(*, now: dt.datetime | None = None) -> list[int]:
    """Every minute: the tries that are due (a retry after its pause, or one a dead worker left)."""
    now = now or clock.now()
    due = ReconciledDelivery.objects.filter(
        Q(status=Status.PENDING)
        | Q(status=Status.RETRYING, next_attempt_at__lte=now)
        | Q(status=Status.SENDING, claimed_at__lt=now - CLAIM_TTL)
    ).select_related("campaign", "destination")
    return [d.pk for d in due if reconciled_delivery_send(delivery=d, now=now).status == Status.DELIVERED]


def reconciled_delivery_restart(*, delivery: ReconciledDelivery) -> bool:
    """Send a delivery that failed for good (or is waiting for its next try) again, now."""
    restarted = ReconciledDelivery.objects.filter(pk=delivery.pk, status__in=[Status.FAILED, Status.RETRYING]).update(
        status=Status.PENDING, attempts=0, next_attempt_at=None, error=""
    )
    if restarted:
        _enqueue(delivery.pk)
    return bool(restarted)


def delivery_summary(*, campaign: Campaign) -> list[dict[str, str]]:
    """Each delivery folder's status for the end-of-day summary, in plain words."""
    rows = []
    for delivery in campaign.deliveries.select_related("destination").order_by("destination__name"):
        if delivery.status == Status.DELIVERED and delivery.delivered_at:
            when = timezone.localtime(delivery.delivered_at).strftime("%b %d, %Y %H:%M %Z")
            text = f"delivered {when}"
        elif delivery.status == Status.RETRYING and delivery.next_attempt_at:
            when = timezone.localtime(delivery.next_attempt_at).strftime("%H:%M %Z")
            text = f"failed {delivery.attempts}×, next try {when}"
        elif delivery.status == Status.FAILED:
            text = f"failed for good after {delivery.attempts} tries"
        else:
            text = delivery.get_status_display().lower()
        rows.append({"destination": delivery.destination.name, "status": delivery.status, "text": text, "error": delivery.error})
    return rows
