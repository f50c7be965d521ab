"""Reconciliation: attempts still open 15 minutes after creation are looked up and resolved."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import Schedule

from campaigns.models import CallAttempt, Campaign, ContactLedgerEntry, QueueItem
from campaigns import schedules
from campaigns.webhooks import reconcile
from campaigns.transitions import campaign_recount
from integrations.http import IntegrationError
from tests.campaigns.retell_factories import call_object, ended, make_dialing_attempt, post_signed, retell_tasks_inline  # noqa: F401 - a fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("retell_tasks_inline")]


def aged(attempt: CallAttempt, minutes: float) -> CallAttempt:
    CallAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - dt.timedelta(minutes=minutes))
    attempt.refresh_from_db()
    return attempt


class FakeRetell:
    """get_call at the edge: answers from a table, or fails like the HTTP client does."""

    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any] | Exception] = {}
        self.looked_up: list[str] = []

    def get_call(self, call_id: str) -> dict[str, Any]:
        self.looked_up.append(call_id)
        answer = self.calls[call_id]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def retell(monkeypatch) -> FakeRetell:
    fake = FakeRetell()
    monkeypatch.setattr(reconcile.retell, "get_call", fake.get_call)
    return fake


def test_a_stale_attempt_is_resolved_from_get_call(retell):
    attempt = aged(make_dialing_attempt(), 16)
    retell.calls[attempt.call_id] = call_object(attempt, disconnection_reason="voicemail_reached")
    report = reconcile.attempts_reconcile(now=timezone.now())
    assert (report.looked_up, report.resolved) == (1, 1)
    attempt.refresh_from_db()
    assert attempt.outcome == "voicemail" and attempt.status == "ended"
    assert QueueItem.objects.get(pk=attempt.queue_item_id).status == "voicemail"
    assert ContactLedgerEntry.objects.get(reference=attempt.call_id).kind == "call_attempt"
    campaign = Campaign.objects.get(pk=attempt.campaign_id)
    assert campaign.voicemail == 1 == campaign_recount(campaign=campaign)["voicemail"]


def test_a_recent_attempt_is_left_to_its_webhooks(retell):
    aged(make_dialing_attempt(), 14)
    report = reconcile.attempts_reconcile(now=timezone.now())
    assert report.looked_up == 0 and retell.looked_up == []


def test_a_late_webhook_after_reconciliation_counts_nothing_twice(client, retell):
    attempt = aged(make_dialing_attempt(), 20)
    retell.calls[attempt.call_id] = call_object(attempt, disconnection_reason="user_hangup")
    reconcile.attempts_reconcile(now=timezone.now())
    assert post_signed(client, ended(attempt, disconnection_reason="user_hangup")).status_code == 204
    campaign = Campaign.objects.get(pk=attempt.campaign_id)
    assert campaign.answered == 1 == campaign_recount(campaign=campaign)["answered"]
    assert ContactLedgerEntry.objects.filter(reference=attempt.call_id).count() == 2  # attempt + conversation


def test_a_call_still_going_is_checked_again_later(retell):
    attempt = aged(make_dialing_attempt(), 30)
    retell.calls[attempt.call_id] = call_object(attempt, call_status="ongoing", disconnection_reason=None)
    report = reconcile.attempts_reconcile(now=timezone.now())
    assert report.still_open == 1
    attempt.refresh_from_db()
    assert attempt.status == "ongoing" and attempt.outcome == ""


def test_a_call_retell_still_reports_open_after_hours_is_failed(retell):
    attempt = aged(make_dialing_attempt(), 3 * 60 + 1)
    retell.calls[attempt.call_id] = call_object(attempt, call_status="registered", disconnection_reason=None)
    report = reconcile.attempts_reconcile(now=timezone.now())
    assert report.failed == 1
    attempt.refresh_from_db()
    assert attempt.outcome == "failed" and "registered" in attempt.error
    assert QueueItem.objects.get(pk=attempt.queue_item_id).status == "failed"


def test_a_passing_lookup_error_is_retried_then_failed_when_it_lasts(retell):
    attempt = aged(make_dialing_attempt(), 20)
    retell.calls[attempt.call_id] = IntegrationError("Retell answered 503", permanent=False, vendor="retell", status=503)
    report = reconcile.attempts_reconcile(now=timezone.now())
    assert (report.lookup_errors, report.failed) == (1, 0)
    attempt.refresh_from_db()
    assert attempt.outcome == "" and "503" in attempt.error
    assert QueueItem.objects.get(pk=attempt.queue_item_id).status == "dialing"

    report = reconcile.attempts_reconcile(now=timezone.now() + reconcile.GIVE_UP_AFTER)
    assert report.failed == 1
    attempt.refresh_from_db()
    assert attempt.outcome == "failed" and "get-call failed" in attempt.error
    item = QueueItem.objects.get(pk=attempt.queue_item_id)
    assert item.status == "failed"
    campaign = Campaign.objects.get(pk=attempt.campaign_id)
    assert campaign.failed == 1 == campaign_recount(campaign=campaign)["failed"]


def test_a_call_retell_does_not_know_is_failed_at_once(retell):
    attempt = aged(make_dialing_attempt(), 20)
    retell.calls[attempt.call_id] = IntegrationError("call not found", permanent=True, vendor="retell", status=404)
    report = reconcile.attempts_reconcile(now=timezone.now())
    assert report.failed == 1
    attempt.refresh_from_db()
    assert attempt.outcome == "failed" and "call not found" in attempt.error


def test_a_dialing_attempt_never_registered_with_retell_is_failed(retell):
    attempt = make_dialing_attempt(attempt_status=CallAttempt.Status.CREATED)
    CallAttempt.objects.filter(pk=attempt.pk).update(call_id=None)
    attempt = aged(attempt, 16)
    report = reconcile.attempts_reconcile(now=timezone.now())
    assert report.failed == 1 and retell.looked_up == []
    attempt.refresh_from_db()
    assert attempt.outcome == "failed" and "never registered" in attempt.error
    assert QueueItem.objects.get(pk=attempt.queue_item_id).status == "failed"
    # Nobody was called: nothing enters the ledger.
    assert not ContactLedgerEntry.objects.exists()


def test_an_outcome_that_beat_the_release_step_is_applied_once_the_item_is_dialing(client, retell):
    attempt = make_dialing_attempt(status=QueueItem.Status.RELEASING)
    assert post_signed(client, ended(attempt)).status_code == 204
    item = QueueItem.objects.get(pk=attempt.queue_item_id)
    assert item.status == "releasing"  # answered is not reachable from releasing
    QueueItem.objects.filter(pk=item.pk).update(status=QueueItem.Status.DIALING)  # the release step catches up
    report = reconcile.attempts_reconcile(now=timezone.now())
    assert report.reapplied == 1
    assert QueueItem.objects.get(pk=item.pk).status == "answered"
    assert reconcile.attempts_reconcile(now=timezone.now()).reapplied == 0
    campaign = Campaign.objects.get(pk=attempt.campaign_id)
    assert campaign.answered == 1 == campaign_recount(campaign=campaign)["answered"]


def test_schedules_install_idempotently():
    first = schedules.schedules_install()
    second = schedules.schedules_install()
    assert [s.pk for s in first] == [s.pk for s in second]
    rows = {s.name: (s.func, s.schedule_type, s.minutes) for s in Schedule.objects.all()}
    assert rows["retell-attempts-reconcile"] == ("campaigns.tasks.attempts_reconcile_task", Schedule.MINUTES, 1)
    # An event a database outage failed is processed again within a minute or two.
    assert rows["retell-webhook-events-retry"] == ("campaigns.tasks.webhook_events_retry_task", Schedule.MINUTES, 1)
    assert rows["heymarket-webhook-events-retry"] == ("campaigns.tasks.webhook_events_retry_task", Schedule.MINUTES, 1)
    assert rows["promises-review"][0] == "campaigns.tasks.promise_review_task"
    assert Schedule.objects.count() == len(schedules.PERIODIC)
