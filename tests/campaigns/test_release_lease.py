"""One release loop per running campaign: the lease, slices, the watchdog and its schedule."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.db import OperationalError
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from django_q.signing import SignedPackage

from campaigns import tasks
from campaigns.models import Campaign
from campaigns.calls import release
from campaigns import schedules
from campaigns.calls.release import (
    LEASE_SECONDS,
    campaign_lease_acquire,
    campaign_lease_release,
    campaign_lease_renew,
    release_loop_run,
    release_watchdog,
    release_watchdog_watch,
)

from .release_factories import FakeClock, make_campaign

pytestmark = pytest.mark.django_db


def queued_tasks() -> list[dict]:
    return [SignedPackage.loads(row.payload) for row in OrmQ.objects.all()]


def test_one_holder_at_a_time_and_an_expired_lease_can_be_taken():
    campaign = make_campaign()
    now = timezone.now()
    assert campaign_lease_acquire(campaign_id=campaign.pk, worker_id="a", now=now)
    assert campaign_lease_acquire(campaign_id=campaign.pk, worker_id="a", now=now)  # re-entrant
    assert not campaign_lease_acquire(campaign_id=campaign.pk, worker_id="b", now=now + dt.timedelta(seconds=LEASE_SECONDS - 1))
    assert campaign_lease_renew(campaign_id=campaign.pk, worker_id="a", now=now + dt.timedelta(seconds=30))
    assert not campaign_lease_acquire(campaign_id=campaign.pk, worker_id="b", now=now + dt.timedelta(seconds=LEASE_SECONDS + 1))
    later = now + dt.timedelta(seconds=30 + LEASE_SECONDS)
    assert campaign_lease_acquire(campaign_id=campaign.pk, worker_id="b", now=later)
    assert not campaign_lease_renew(campaign_id=campaign.pk, worker_id="a", now=later)
    assert not campaign_lease_release(campaign_id=campaign.pk, worker_id="a")
    assert campaign_lease_release(campaign_id=campaign.pk, worker_id="b")
    assert campaign_lease_acquire(campaign_id=campaign.pk, worker_id="c", now=later)


def test_no_lease_on_a_campaign_that_is_not_running():
    for status in (Campaign.Status.PAUSED, Campaign.Status.STOPPING, Campaign.Status.DRAFT):
        campaign = make_campaign(date=dt.date(2025, 1, 1) + dt.timedelta(days=len(status)), status=status)
        assert not campaign_lease_acquire(campaign_id=campaign.pk, worker_id="a")
        assert release_loop_run(campaign_id=campaign.pk, worker_id="a", reenqueue=False) == "ended"


def test_a_second_loop_backs_off_while_the_first_holds_the_lease():
    campaign = make_campaign()
    assert campaign_lease_acquire(campaign_id=campaign.pk, worker_id="first")
    assert release_loop_run(campaign_id=campaign.pk, worker_id="second", reenqueue=False) == "busy"
    campaign.refresh_from_db()
    assert campaign.lease_owner == "first"


def test_the_loop_ends_when_the_campaign_pauses():
    campaign = make_campaign()
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)

    outcome = release_loop_run(
        campaign_id=campaign.pk, worker_id="w", slice_seconds=60, sleep=sleep, monotonic=clock.monotonic, reenqueue=False
    )
    assert outcome == "ended"
    campaign.refresh_from_db()
    assert campaign.lease_owner == "" and campaign.lease_expires_at is None


def test_a_slice_ends_hands_back_the_lease_and_enqueues_the_next(django_capture_on_commit_callbacks):
    campaign = make_campaign()
    clock = FakeClock()
    with django_capture_on_commit_callbacks(execute=True):
        outcome = release_loop_run(campaign_id=campaign.pk, worker_id="w", slice_seconds=3, sleep=clock.sleep, monotonic=clock.monotonic)
    assert outcome == "continue"
    assert sum(clock.sleeps) >= 3  # it idled (nothing queued) until the slice was over
    campaign.refresh_from_db()
    assert campaign.lease_owner == ""
    tasks = queued_tasks()
    assert [(t["func"], t["args"]) for t in tasks] == [("campaigns.tasks.release_loop_task", (campaign.pk,))]


def test_slices_are_shorter_than_the_cluster_timeout(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 300}
    assert release.release_slice_seconds() < 300
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 30}
    assert release.release_slice_seconds() < 30


def test_watchdog_restarts_loops_whose_lease_expired(django_capture_on_commit_callbacks):
    now = timezone.now()
    crashed = make_campaign(date=dt.date(2025, 6, 1), lease_owner="dead-worker", lease_expires_at=now - dt.timedelta(seconds=1))
    never_started = make_campaign(date=dt.date(2025, 6, 2))
    healthy = make_campaign(date=dt.date(2025, 6, 3), lease_owner="alive", lease_expires_at=now + dt.timedelta(seconds=30))
    make_campaign(date=dt.date(2025, 6, 4), status=Campaign.Status.PAUSED, lease_owner="", lease_expires_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        restarted = release_watchdog(now=now)
    assert sorted(restarted) == sorted([crashed.pk, never_started.pk])
    assert sorted(t["args"][0] for t in queued_tasks()) == sorted([crashed.pk, never_started.pk])
    assert healthy.pk not in restarted


def test_a_crashed_loops_campaign_is_taken_over_once_its_lease_expires():
    campaign = make_campaign()
    t0 = timezone.now()
    assert campaign_lease_acquire(campaign_id=campaign.pk, worker_id="crashed", now=t0)
    # The crashed loop never renews; at the first watchdog tick after expiry another worker takes over.
    assert release_watchdog(now=t0 + dt.timedelta(seconds=LEASE_SECONDS - 1)) == []
    assert release_watchdog(now=t0 + dt.timedelta(seconds=LEASE_SECONDS)) == [campaign.pk]
    assert campaign_lease_acquire(campaign_id=campaign.pk, worker_id="new", now=t0 + dt.timedelta(seconds=LEASE_SECONDS))


def test_watchdog_schedule_is_installed_once_and_points_at_a_real_task():
    schedules.schedules_install()
    schedules.schedules_install()
    schedule = Schedule.objects.get(name="release-watchdog")
    assert Schedule.objects.filter(name="release-watchdog").count() == 1
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)
    module, func = schedule.func.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), func))


def test_the_loop_installs_the_watchdog():
    campaign = make_campaign()
    clock = FakeClock()
    release_loop_run(campaign_id=campaign.pk, worker_id="w", slice_seconds=1, sleep=clock.sleep, monotonic=clock.monotonic, reenqueue=False)
    assert Schedule.objects.filter(name="release-watchdog", func="campaigns.tasks.release_watchdog_task").exists()


def test_the_watchdog_returns_at_once_when_no_campaign_runs():
    make_campaign(status=Campaign.Status.PAUSED)
    clock = FakeClock()
    assert release_watchdog_watch(sleep=clock.sleep, monotonic=clock.monotonic) == []
    assert clock.sleeps == []


def test_the_watchdog_notices_a_lapsed_lease_within_one_check(django_capture_on_commit_callbacks):
    campaign = make_campaign()
    assert campaign_lease_acquire(campaign_id=campaign.pk, worker_id="alive")
    clock = FakeClock()
    started = clock.t
    lapsed_at: list[float] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:  # the holder dies: its lease is left to lapse
            Campaign.objects.filter(pk=campaign.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
            lapsed_at.append(clock.t)

    restarts: list[float] = []
    original = release.release_loop_start

    def loop_start(*, campaign_id: int) -> None:
        restarts.append(clock.t)
        original(campaign_id=campaign_id)

    with django_capture_on_commit_callbacks(execute=True):
        release.release_loop_start = loop_start
        try:
            restarted = release_watchdog_watch(seconds=55, every=5, sleep=sleep, monotonic=clock.monotonic)
        finally:
            release.release_loop_start = original
    # Noticed at the next check; the lease stays lapsed (no worker ran the task), so it is
    # restarted again only once the cool-down has passed, and the watch ends inside its minute.
    assert restarted == [campaign.pk, campaign.pk]
    assert restarts[0] - lapsed_at[0] <= 5
    assert restarts[1] - restarts[0] >= release.WATCHDOG_RESTART_COOLDOWN_SECONDS
    assert clock.t - started <= 55
    assert [t["args"][0] for t in queued_tasks()] == [campaign.pk, campaign.pk]


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_keeps_watching_through_a_database_outage(monkeypatch, django_capture_on_commit_callbacks):
    campaign = make_campaign(lease_owner="dead-worker", lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    calls = []
    original = release.release_watchdog

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) <= 2:
            raise OperationalError("server closed the connection unexpectedly")
        return original(**kwargs)

    monkeypatch.setattr(release, "release_watchdog", flaky)
    clock = FakeClock()
    with django_capture_on_commit_callbacks(execute=True):
        restarted = release_watchdog_watch(seconds=20, every=5, sleep=clock.sleep, monotonic=clock.monotonic)
    # Two failed checks, then the database answers again and the orphaned loop is restarted.
    assert restarted == [campaign.pk]
    assert len(calls) >= 3 and clock.sleeps[:2] == [5, 5]


def test_the_task_runs_the_loop_for_its_campaign(monkeypatch):
    monkeypatch.setattr(release, "WATCHDOG_WATCH_SECONDS", 0.0)
    paused = make_campaign(status=Campaign.Status.PAUSED)
    assert tasks.release_loop_task(paused.pk) == "ended"
    running = make_campaign(date=dt.date(2025, 7, 1))
    assert campaign_lease_acquire(campaign_id=running.pk, worker_id="someone-else")
    assert tasks.release_loop_task(running.pk) == "busy"
    assert tasks.release_watchdog_task() == []
