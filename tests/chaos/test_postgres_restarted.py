"""PostgreSQL restarted in the middle of the day, under the web process and the worker: every
connection is cut and the server refuses new ones for a moment. The run resumes by itself — the
release loop goes on placing calls, webhooks are accepted again — and what the outage cost is
recovered where the design says it is: a webhook whose every retry fell in the outage is resolved
by the reconciliation pass (run here with its clock past its 15-minute threshold). Every item is
still dialed exactly once.

The server is restarted with Debian's `pg_ctlcluster` (the cluster serving the test database's
port, found with `pg_lsclusters`), or with the command in CHAOS_POSTGRES_RESTART.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import shutil
import subprocess
import time

import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from django_q.tasks import async_task

from campaigns.models import QueueItem
from campaigns.webhooks import reconcile
from integrations.sandbox.models import SimulatedCall, SimulatedDelivery
from campaigns.webhooks import inbox

from .processes import assert_each_item_dialed_once, portal, running_campaign, wait_for  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

CALLS = 200
RESUME_BOUND_SECONDS = 60


def restart_command() -> list[str]:
    configured = os.environ.get("CHAOS_POSTGRES_RESTART", "")
    if configured:
        return shlex.split(configured)
    if not (shutil.which("pg_lsclusters") and shutil.which("pg_ctlcluster")):
        pytest.skip("no way to restart PostgreSQL here: set CHAOS_POSTGRES_RESTART to a command that does")
    port = str(connection.settings_dict["PORT"] or 5432)
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        version, name, cluster_port, *_ = line.split()
        if cluster_port == port:
            return ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "--mode", "fast"]
    pytest.skip(f"no local PostgreSQL cluster on port {port}: set CHAOS_POSTGRES_RESTART")


def database_answers() -> bool:
    try:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except OperationalError:
        return False


def settled() -> bool:
    """Nothing left to place and the simulator has nothing left to send."""
    open_items = QueueItem.objects.filter(status__in=[QueueItem.Status.QUEUED, QueueItem.Status.RELEASING]).exists()
    sending = SimulatedDelivery.objects.filter(status__in=[SimulatedDelivery.Status.PENDING, SimulatedDelivery.Status.SENDING]).exists()
    return not open_items and not sending


def test_a_postgres_restart_mid_day_is_ridden_out(portal, settings) -> None:
    command = restart_command()
    settings.SANDBOX_APP_URL = portal.base  # the reconciliation pass below asks the simulator over HTTP
    campaign = running_campaign(CALLS, calls_per_second=4)
    portal.qcluster("cluster")
    async_task("campaigns.tasks.release_loop_task", campaign.pk)
    wait_for(lambda: SimulatedCall.objects.count() >= 30, timeout=120, what="the loop to place its first calls")

    placed_before = SimulatedCall.objects.count()
    connection.close()
    started = time.monotonic()
    subprocess.run(command, check=True, timeout=120, capture_output=True)
    wait_for(database_answers, timeout=60, what="PostgreSQL to accept connections again")
    outage = time.monotonic() - started
    assert SimulatedCall.objects.count() < CALLS, "the day ended before the restart"

    resumed = wait_for(lambda: SimulatedCall.objects.count() > placed_before + 5, timeout=120, what="calls to resume")
    assert resumed <= RESUME_BOUND_SECONDS, f"calls resumed {resumed:.0f} s after the database came back"
    wait_for(settled, timeout=300, what="every call to be placed and every webhook sent")

    # Webhooks the outage refused three times are in the simulator as failed deliveries; their
    # calls are what the reconciliation pass is for.
    failed = SimulatedDelivery.objects.filter(status=SimulatedDelivery.Status.FAILED).count()
    report = reconcile.attempts_reconcile(now=timezone.now() + reconcile.RECONCILE_AFTER + dt.timedelta(minutes=1), limit=CALLS)
    # Events stored before the restart whose processing task the outage failed are what the
    # minute retry is for (its schedule is not installed here; this is its pass).
    retried = inbox.webhook_events_retry(now=timezone.now() + inbox.RETRY_AFTER + dt.timedelta(seconds=5))
    print(
        f"restart took {outage:.1f} s; calls resumed {resumed:.1f} s after it; {failed} webhook deliveries failed "
        f"for good; reconciliation looked up {report.looked_up} calls and resolved {report.resolved}; "
        f"the retry processed {retried} events the outage had failed"
    )
    assert_each_item_dialed_once(campaign, CALLS)
