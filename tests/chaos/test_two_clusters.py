"""Two django-q clusters working one campaign: both run release loops for it (each cluster is
handed the campaign's loop, as after a failover), the lease keeps one releasing at a time, and
every item is dialed exactly once."""

from __future__ import annotations

import pytest
from django_q.tasks import async_task

from .processes import assert_each_item_dialed_once, portal, running_campaign  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

CALLS = 200


def test_two_clusters_on_one_campaign_dial_each_item_once(portal) -> None:
    campaign = running_campaign(CALLS, calls_per_second=20)
    portal.qcluster("cluster-a")
    portal.qcluster("cluster-b")
    for _ in range(4):  # more loops than clusters: every extra one must find the lease taken
        async_task("campaigns.tasks.release_loop_task", campaign.pk)
    assert_each_item_dialed_once(campaign, CALLS)
    for name in ("cluster-a", "cluster-b"):
        assert "Traceback" not in (portal.logs / f"{name}.log").read_text(errors="replace")
