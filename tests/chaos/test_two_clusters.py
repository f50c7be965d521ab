"""Two django-q clusters working one campaign: both run release loops for it (each cluster is
handed the campaign's loop, as after a failover), the lease keeps one releasing at a time, and
every item is dialed exactly once."""

from __future__ import annotations

import pytest
from django.db.models import Count
from django_q.tasks import async_task

from campaigns.models import QueueItem, WebhookEvent
from integrations.sandbox.models import SimulatedCall

from .harness import assert_invariants
from .processes import day_done, portal, running_campaign, wait_for  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

CALLS = 200


def test_two_clusters_on_one_campaign_dial_each_item_once(portal) -> None:
    campaign = running_campaign(CALLS, calls_per_second=20)
    portal.qcluster("cluster-a")
    portal.qcluster("cluster-b")
    for _ in range(4):  # more loops than clusters: every extra one must find the lease taken
        async_task("campaigns.tasks.release_loop_task", campaign.pk)
    wait_for(lambda: day_done(campaign), timeout=300, what="every call to be placed and resolved")
    wait_for(lambda: not WebhookEvent.objects.filter(processed_at=None).exists(), timeout=120, what="every webhook to be processed")

    per_number = SimulatedCall.objects.values("to_number").annotate(n=Count("pk"))
    assert per_number.count() == CALLS and {row["n"] for row in per_number} == {1}
    assert QueueItem.objects.filter(campaign=campaign, call_attempts=1).count() == CALLS
    assert_invariants(campaign)
    for name in ("cluster-a", "cluster-b"):
        assert "Traceback" not in (portal.logs / f"{name}.log").read_text(errors="replace")
