"""Revalidation marks queued items whose client the query no longer returns, and nothing else."""

from __future__ import annotations

import datetime as dt

import pytest
from django_q.models import Schedule

from cadences.models import DialerSettings
from campaigns import tasks
from campaigns.models import Alert, Campaign, QueueItem
from campaigns.queue import load as queue
from campaigns.transitions import campaign_recount
from campaigns.lifecycle import campaign as lifecycle

from .conftest import NOW, client_row

S = QueueItem.Status

# RED Initial: day 1 is SMS and call, day 3 a call, day 5 an SMS.
BOTH_DAY, CALL_DAY, SMS_DAY = 1, 3, 5


@pytest.fixture
def loaded(sample_warehouse, campaign):
    rows = sample_warehouse.add(
        [client_row(days_past_due=CALL_DAY) for _ in range(4)]
        + [client_row(days_past_due=SMS_DAY), client_row(days_past_due=BOTH_DAY)]
    )
    queue.queue_load(campaign=campaign, now=NOW)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)
    campaign.refresh_from_db()
    return [r["client_id"] for r in rows]


def item(campaign, client_id):
    return QueueItem.objects.get(campaign=campaign, client_id=client_id)


@pytest.mark.django_db
def test_queued_items_of_clients_gone_from_the_query_become_ineligible(sample_warehouse, campaign, loaded):
    staying, gone_call, gone_sms, gone_both = loaded[0], loaded[1], loaded[4], loaded[5]
    sample_warehouse.resolve([gone_call, gone_sms, gone_both])
    later = NOW + dt.timedelta(minutes=30)

    marked = queue.queue_revalidate(campaign=campaign, now=later)

    assert marked == 3
    assert item(campaign, staying).status == S.QUEUED
    for client_id in (gone_call, gone_sms, gone_both):
        gone = item(campaign, client_id)
        assert gone.status == S.INELIGIBLE
        assert gone.skip_reason == "ineligible"
        assert gone.skip_detail["reason"] == "no longer returned by the queue query"
        assert gone.skip_detail["revalidated_at"] == later.isoformat()
        assert gone.status_changed_at == later
    # Their texts are off too: the SMS scheduler must not pick them up.
    assert item(campaign, gone_sms).sms_status == QueueItem.SmsStatus.SKIPPED
    assert item(campaign, gone_both).sms_status == QueueItem.SmsStatus.SKIPPED
    campaign.refresh_from_db()
    assert campaign.ineligible == 3
    assert campaign.last_revalidated_at == later
    assert campaign_recount(campaign=campaign)["ineligible"] == campaign.ineligible


@pytest.mark.django_db
def test_items_already_released_dialed_or_sent_are_untouched(sample_warehouse, campaign, loaded):
    releasing, dialing, answered, sent = loaded[0], loaded[1], loaded[2], loaded[4]
    QueueItem.objects.filter(campaign=campaign, client_id=releasing).update(status=S.RELEASING)
    QueueItem.objects.filter(campaign=campaign, client_id=dialing).update(status=S.DIALING)
    QueueItem.objects.filter(campaign=campaign, client_id=answered).update(status=S.ANSWERED)
    QueueItem.objects.filter(campaign=campaign, client_id=sent).update(status=S.SMS_SENT, sms_status=QueueItem.SmsStatus.SENT)
    sample_warehouse.resolve(loaded)
    # One client still eligible, or the empty result would be treated as a warehouse problem.
    sample_warehouse.add([client_row(client_id="SOMEONE-ELSE")])

    marked = queue.queue_revalidate(campaign=campaign, now=NOW)

    assert marked == 2  # the still-queued call item and the still-pending BOTH item
    assert item(campaign, releasing).status == S.RELEASING
    assert item(campaign, dialing).status == S.DIALING
    assert item(campaign, answered).status == S.ANSWERED
    assert (item(campaign, sent).status, item(campaign, sent).sms_status) == (S.SMS_SENT, QueueItem.SmsStatus.SENT)
    assert item(campaign, loaded[3]).status == S.INELIGIBLE


@pytest.mark.django_db
def test_uploaded_clients_are_not_revalidated_against_the_warehouse(sample_warehouse, campaign, loaded):
    QueueItem.objects.filter(campaign=campaign, client_id=loaded[0]).update(source=queue.SOURCE_CSV)
    sample_warehouse.resolve([loaded[0], loaded[1]])

    marked = queue.queue_revalidate(campaign=campaign, now=NOW)

    assert marked == 1
    assert item(campaign, loaded[0]).status == S.QUEUED


@pytest.mark.django_db
def test_running_it_again_changes_nothing_more(sample_warehouse, campaign, loaded):
    sample_warehouse.resolve([loaded[1]])
    assert queue.queue_revalidate(campaign=campaign, now=NOW) == 1

    assert queue.queue_revalidate(campaign=campaign, now=NOW) == 0

    campaign.refresh_from_db()
    assert campaign.ineligible == 1


@pytest.mark.django_db
def test_other_campaigns_are_untouched(sample_warehouse, campaign, loaded):
    other = lifecycle.campaign_create(date=NOW.date() - dt.timedelta(days=1))
    queue.queue_load(campaign=other, now=NOW)
    sample_warehouse.resolve([loaded[1]])

    queue.queue_revalidate(campaign=campaign, now=NOW)

    assert not QueueItem.objects.filter(campaign=other, status=S.INELIGIBLE).exists()


@pytest.mark.django_db
def test_an_empty_query_result_marks_nothing_and_raises_an_alert(sample_warehouse, campaign, loaded):
    sample_warehouse.resolve(loaded)

    assert queue.queue_revalidate(campaign=campaign, now=NOW) == 0

    assert not QueueItem.objects.filter(campaign=campaign, status=S.INELIGIBLE).exists()
    alert = Alert.objects.get(campaign=campaign, source="revalidation")
    assert "returned no clients" in alert.message


@pytest.mark.django_db
def test_the_task_revalidates_a_running_campaign_only(sample_warehouse, campaign, loaded):
    sample_warehouse.resolve([loaded[1]])
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPED)
    assert tasks.queue_revalidate_task(campaign.pk) == 0
    assert item(campaign, loaded[1]).status == S.QUEUED

    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)
    assert tasks.queue_revalidate_task(campaign.pk) == 1
    assert item(campaign, loaded[1]).status == S.INELIGIBLE


@pytest.mark.django_db
def test_the_schedule_is_installed_once_with_the_configured_interval_and_removed(campaign):
    settings_row = DialerSettings.load()
    settings_row.revalidation_interval_minutes = 45
    settings_row.save()

    queue.revalidation_schedule_install(campaign=campaign, now=NOW)
    schedule = queue.revalidation_schedule_install(campaign=campaign, now=NOW)

    assert Schedule.objects.filter(name=f"revalidate-campaign-{campaign.pk}").count() == 1
    assert schedule.func == "campaigns.tasks.queue_revalidate_task"
    assert schedule.args == f"({campaign.pk},)"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 45, -1)
    assert schedule.next_run == NOW + dt.timedelta(minutes=45)

    assert queue.revalidation_schedule_remove(campaign=campaign) == 1
    assert not Schedule.objects.filter(name=f"revalidate-campaign-{campaign.pk}").exists()
