"""Invariant 1: a queue item is dialed at most once, whatever number of loops run at once.

Two release loops run in two threads against the sandbox Retell over HTTP. The main test runs
them truly at once over 10,000 queued items: no lease between them, both claiming from the same
ring groups at the same instant (as when a stalled loop's lease expires while it still runs), so
only the claim protects the items. The second runs two complete leased loops (each with its own
worker id, both alive the whole time, taking the campaign's lease in turns every half second, as
two workers would). Both count, per item, the call attempts Retell accepted, and ask the
simulator how many calls it created per destination number and per idempotency key.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.models import Count

from cadences.models import DialerSettings
from campaigns.models import CallAttempt, Campaign, ContactLedgerEntry, QueueItem
from campaigns.calls.release import LoopState, Pacer, release_loop_run, release_pass
from integrations.sandbox.models import SimulatedCall

from .release_factories import dialer_settings, make_call_step, make_campaign, make_segment, sandbox  # noqa: F401
from .release_factories import item_fields

ITEMS = 10_000
# The loops that share the lease take turns, so their run shows the hand-over, not concurrency;
# a smaller queue keeps it short.
LEASED_ITEMS = 2_000
RING_GROUPS = ("billing-east", "billing-west", "resurrection-east", "resurrection-west")
NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2025, 6, 10, 10, 0, tzinfo=NY)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(
        connection.vendor == "sqlite" and connection.settings_dict["TEST"].get("NAME") in (None, "", ":memory:"),
        reason="two threads writing at once need a database file on SQLite (set SQLITE_TEST_NAME) or PostgreSQL",
    ),
]


@pytest.fixture
def queued_campaign(sandbox):
    sandbox.retell_concurrency_limit = 30_000
    sandbox.dialflow_pattern = [50]
    sandbox.save()
    dialer_settings(max_concurrent_calls=30_000, max_call_attempts_per_day=2)
    DialerSettings.objects.update(calls_per_second=0)  # pacing off (the admin would refuse 0)
    campaign = make_campaign(date=NOW.date(), batch_size=250, batch_timeout_seconds=1, release_threshold=1)
    step = make_call_step(make_segment())

    def fill(count: int) -> Campaign:
        QueueItem.objects.bulk_create(
            [
                QueueItem(**item_fields(campaign, step, client_id=f"X{n:05d}", phone=f"+1{212 + n // 10000}555{n % 10000:04d}", ring_group=RING_GROUPS[n % 4]))
                for n in range(count)
            ],
            batch_size=2000,
        )
        return campaign

    return fill


def business_clock() -> Callable[[], dt.datetime]:
    """Business time running 10× real time from 10:00, so a batch that is still out times out
    after a tenth of a second of real time (no webhooks arrive in this test)."""
    started = time.monotonic()
    return lambda: NOW + dt.timedelta(seconds=(time.monotonic() - started) * 10)


def in_threads(*targets: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # surfaced below, in the test's own thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a release thread did not finish"
    if errors:
        raise errors[0]


def remaining(campaign: Campaign) -> int:
    return QueueItem.objects.filter(campaign=campaign, status__in=[QueueItem.Status.QUEUED, QueueItem.Status.RELEASING]).count()


def assert_each_item_dialed_once(campaign: Campaign, count: int) -> None:
    items = QueueItem.objects.filter(campaign=campaign)
    assert items.count() == count
    assert items.filter(status=QueueItem.Status.DIALING, call_attempts=1).count() == count
    accepted = CallAttempt.objects.filter(campaign=campaign).exclude(call_id=None)
    per_item = accepted.values("queue_item").annotate(n=Count("pk"))
    assert per_item.count() == count and {row["n"] for row in per_item} == {1}

    calls = SimulatedCall.objects.all()
    assert calls.count() == count
    per_number = calls.values("to_number").annotate(n=Count("pk"))
    assert per_number.count() == count and {row["n"] for row in per_number} == {1}
    keys = set(calls.values_list("idempotency_key", flat=True))
    assert keys == {str(pk) for pk in accepted.values_list("pk", flat=True)}

    campaign.refresh_from_db()
    assert campaign.calls_placed == count
    assert ContactLedgerEntry.objects.filter(kind=ContactLedgerEntry.Kind.CALL_ATTEMPT).count() == count


def test_two_leased_release_loops_dial_each_item_exactly_once(queued_campaign):
    campaign = queued_campaign(LEASED_ITEMS)
    Campaign.objects.filter(pk=campaign.pk).update(batch_size=50)  # short passes, so slices end often
    now_fn = business_clock()
    holders: dict[str, int] = {"a": 0, "b": 0}

    def loop(worker: str) -> Callable[[], None]:
        def run() -> None:
            while remaining(campaign):
                outcome = release_loop_run(
                    campaign_id=campaign.pk, worker_id=worker, now_fn=now_fn, slice_seconds=0.5, sleep=lambda s: time.sleep(min(s, 0.05)), reenqueue=False
                )
                if outcome == "continue":
                    holders[worker] += 1
                # Between slices the task goes back to the queue, where any worker may take it.
                time.sleep(0.1)

        return run

    in_threads(loop("a"), loop("b"))
    assert_each_item_dialed_once(campaign, LEASED_ITEMS)
    assert holders["a"] and holders["b"], f"both loops should have held the lease at some point: {holders}"


def test_two_release_loops_at_once_dial_each_item_exactly_once(queued_campaign):
    campaign = queued_campaign(ITEMS)
    now_fn = business_clock()
    barrier = threading.Barrier(2)

    def releaser() -> None:
        state = LoopState(pacer=Pacer(None))
        own = Campaign.objects.get(pk=campaign.pk)
        barrier.wait()
        while remaining(campaign):
            if not release_pass(campaign=own, now_fn=now_fn, state=state):
                time.sleep(0.02)

    in_threads(releaser, releaser)
    assert_each_item_dialed_once(campaign, ITEMS)
