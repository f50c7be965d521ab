"""The worker running a campaign's release loop killed outright (SIGKILL, no clean-up) in the middle
of the day: its lease lapses, the watchdog hands the campaign to another worker within a minute,
the placements the dead loop had claimed are finished with their own idempotency keys, and every
item is dialed exactly once."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django_q.tasks import async_task

from integrations.sandbox.models import SimulatedCall

from .processes import assert_each_item_dialed_once, lease_owner, portal, running_campaign, wait_for  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

CALLS = 150
TAKEOVER_BOUND_SECONDS = 60


def test_a_killed_release_worker_is_taken_over_within_a_minute(portal) -> None:
    # Paced slowly, so the loop is mid-day (and mid-batch) when its worker dies.
    campaign = running_campaign(CALLS, calls_per_second=3)
    portal.qcluster("cluster")
    async_task("campaigns.tasks.release_loop_task", campaign.pk)
    wait_for(lambda: SimulatedCall.objects.count() >= 20, timeout=120, what="the loop to place its first calls")

    owner = lease_owner(campaign)  # host:pid:token of the worker process running the loop
    os.kill(int(owner.split(":")[1]), signal.SIGKILL)
    placed_before = SimulatedCall.objects.count()
    assert placed_before < CALLS, "the day ended before the worker could be killed"

    took = wait_for(lambda: lease_owner(campaign) not in ("", owner), timeout=120, what="another worker to take the lease")
    assert took <= TAKEOVER_BOUND_SECONDS, f"takeover took {took:.0f} s"
    started = time.monotonic()
    wait_for(lambda: SimulatedCall.objects.count() > placed_before, timeout=60, what="the new holder to place calls")
    resumed = took + (time.monotonic() - started)
    print(f"lease taken over {took:.1f} s after the kill; calls resumed after {resumed:.1f} s")
    assert resumed <= TAKEOVER_BOUND_SECONDS + 10

    assert_each_item_dialed_once(campaign, CALLS)
    log = (portal.logs / "cluster.log").read_text(errors="replace")
    assert "release loop not running; restarting it" in log
