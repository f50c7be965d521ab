"""django-q2 entry points: each takes ids, fetches, and calls one service."""

from __future__ import annotations

import logging

from campaigns.models import Campaign
from campaigns.services import queue

log = logging.getLogger(__name__)


def queue_revalidate_task(campaign_id: int) -> int:
    """Scheduled every revalidation interval while a campaign runs."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status not in (Campaign.Status.RUNNING, Campaign.Status.PAUSED):
        # A schedule that outlived its campaign's day (stopped between runs) has nothing to do.
        log.info("revalidation skipped: campaign not running", extra={"campaign_id": campaign_id})
        return 0
    return queue.queue_revalidate(campaign=campaign)
