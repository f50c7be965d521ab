"""Owner routing and alerts: who a follow-up task goes to, and what they are told, when."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from cadences.models import Phase, Segment
from campaigns import schedules
from campaigns.models import Account, Alert, FollowUpTask, NotificationTarget, TierOwner
from campaigns.owners import alerts
from integrations.sandbox.models import SimulatedNotification
from tests.campaigns.notify_receiver import closed_port_url, notify_receiver  # noqa: F401 - a fixture
from tests.campaigns.retell_factories import analyzed, call_analysis, make_dialing_attempt, post_signed, retell_tasks_inline  # noqa: F401 - a fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("retell_tasks_inline")]

BASE = "https://portal.example.com"
SUMMARY = "The client owes $1,234.56 and says the charge on 2025-05-01 is wrong."


def analyze(client, custom, **item_fields):
    attempt = make_dialing_attempt(**item_fields)
    payload = analyzed(attempt, analysis=call_analysis(custom=custom, summary=SUMMARY))
    assert post_signed(client, payload).status_code == 204
    return attempt


def user(username, **fields):
    return get_user_model().objects.create_user(username=username, password="x", **fields)


def task_of(attempt) -> FollowUpTask:
    return FollowUpTask.objects.get(source_ref=attempt.call_id)


def timeline(client_id: str) -> str:
    return f"{BASE}/dashboard/clients/{client_id}/"


# --- Routing rules -------------------------------------------------------------------------------


@override_settings(NOTIFY_SANDBOX=True)
def test_a_task_without_other_rules_goes_to_the_team_of_the_clients_phase(client):
    attempt = analyze(client, {"hardship": True}, phase=Phase.RE_ENGAGEMENT, team="resurrection")
    task = task_of(attempt)
    assert task.routed_by == FollowUpTask.RoutedBy.TEAM
    assert task.team == "resurrection" and task.owner is None and task.owner_name == ""
    assert task.alert_mode == FollowUpTask.AlertMode.DIGEST


@override_settings(NOTIFY_SANDBOX=True)
def test_a_client_owing_the_segments_high_value_amount_goes_to_its_senior_owner(client):
    senior = user("senior")
    attempt = analyze(client, {"hardship": True}, amount_due=Decimal("750.00"))
    Segment.objects.filter(pk=attempt.queue_item.segment_id).update(high_value_threshold=Decimal("500.00"), senior_owner=senior)
    Account.objects.filter(client_id=attempt.queue_item.client_id).update(amount_due=Decimal("750.00"))
    FollowUpTask.objects.update(routed_at=None, routed_by="")
    alerts.owner_alerts_sweep(now=timezone.now())
    task = task_of(attempt)
    assert task.owner == senior and task.routed_by == FollowUpTask.RoutedBy.AMOUNT

    below = analyze(client, {"hardship": True})  # owes 123.45, under the threshold
    assert task_of(below).owner is None and task_of(below).routed_by == FollowUpTask.RoutedBy.TEAM


@override_settings(NOTIFY_SANDBOX=True)
def test_a_tier_with_a_senior_owner_gets_its_clients_tasks(client):
    gold = user("gold-desk")
    TierOwner.objects.create(tier="Gold", owner=gold)
    attempt = make_dialing_attempt()
    Account.objects.filter(client_id=attempt.queue_item.client_id).update(tier="gold")
    assert post_signed(client, analyzed(attempt, analysis=call_analysis(custom={"hardship": True}))).status_code == 204
    task = task_of(attempt)
    assert task.owner == gold and task.routed_by == FollowUpTask.RoutedBy.TIER


@override_settings(NOTIFY_SANDBOX=True)
def test_the_warehouse_account_owner_is_matched_to_a_portal_user_by_username_or_email(client):
    pat = user("pquinn", email="Pat.Quinn@example.com")
    by_email = make_dialing_attempt()
    Account.objects.filter(client_id=by_email.queue_item.client_id).update(owner="pat.quinn@example.com")
    by_username = make_dialing_attempt()
    Account.objects.filter(client_id=by_username.queue_item.client_id).update(owner="PQuinn")
    for attempt in (by_email, by_username):
        assert post_signed(client, analyzed(attempt, analysis=call_analysis(custom={"hardship": True}))).status_code == 204
        task = task_of(attempt)
        assert task.owner == pat and task.routed_by == FollowUpTask.RoutedBy.ACCOUNT_OWNER


@override_settings(NOTIFY_SANDBOX=True)
def test_an_account_owner_no_portal_user_matches_is_recorded_by_name(client):
    attempt = make_dialing_attempt()
    Account.objects.filter(client_id=attempt.queue_item.client_id).update(owner="Robin Hale")
    assert post_signed(client, analyzed(attempt, analysis=call_analysis(custom={"hardship": True}))).status_code == 204
    task = task_of(attempt)
    assert task.owner is None and task.owner_name == "Robin Hale" and task.routed_by == FollowUpTask.RoutedBy.TEAM


@override_settings(NOTIFY_SANDBOX=True)
def test_an_owner_a_supervisor_chose_is_kept(client):
    chosen, senior = user("chosen"), user("senior")
    attempt = make_dialing_attempt()
    Account.objects.filter(client_id=attempt.queue_item.client_id).update(tier="gold")
    TierOwner.objects.create(tier="gold", owner=senior)
    task = FollowUpTask.objects.create(
        kind=FollowUpTask.Kind.HARDSHIP, source_ref="manual-1", client_id=attempt.queue_item.client_id, owner=chosen, due_at=timezone.now()
    )
    alerts.owner_alerts_sweep(now=timezone.now())
    task.refresh_from_db()
    assert task.owner == chosen and task.routed_by == FollowUpTask.RoutedBy.TIER


# --- What is sent, and when ----------------------------------------------------------------------


@override_settings(NOTIFY_SANDBOX=False, PUBLIC_BASE_URL=BASE)
@pytest.mark.parametrize("field,label", [
    ("dispute", "Dispute"), ("legal_language", "Legal language"),
    ("vulnerable_customer", "Vulnerable customer"), ("compliance_exception", "Compliance exception"),
])  # fmt: skip
def test_urgent_tasks_alert_the_team_at_once_with_first_name_last_four_and_timeline_link(client, notify_receiver, field, label):
    NotificationTarget.objects.create(team="billing", urls=notify_receiver.url)
    attempt = analyze(client, {field: "The client said something a person must handle."}, client_name="Jordan Avery", phone="+12125550147")
    assert len(notify_receiver.received) == 1
    message = notify_receiver.received[0]
    client_id = attempt.queue_item.client_id
    assert message["title"] == f"{label}: a follow-up task needs you"
    assert message["message"] == f"{label} — Jordan, phone ending 0147: {timeline(client_id)}"
    text = message["title"] + message["message"]
    for secret in ("Avery", "2125550147", "+1212", "123.45", "1,234.56", "charge", "person must handle"):
        assert secret not in text
    assert task_of(attempt).alerted_at is not None


@override_settings(NOTIFY_SANDBOX=False, PUBLIC_BASE_URL=BASE)
def test_other_tasks_wait_for_one_digest_per_destination(client, notify_receiver):
    NotificationTarget.objects.create(team="billing", urls=notify_receiver.url)
    first = analyze(client, {"hardship": True}, client_name="Jordan Avery", phone="+12125550111")
    second = analyze(client, {"cancellation_request": True}, client_name="Sam Lee", phone="+12125550122")
    assert notify_receiver.received == []

    report = alerts.owner_alerts_digest(now=timezone.now())
    assert report.sent == 2 and report.messages == 1
    assert notify_receiver.received == [
        {
            "version": "1.0",
            "title": "2 follow-up tasks waiting",
            "message": f"Hardship — Jordan, phone ending 0111: {timeline(first.queue_item.client_id)}\n"
            f"Cancellation request — Sam, phone ending 0122: {timeline(second.queue_item.client_id)}",
            "attachments": [],
            "type": "info",
        }
    ]
    alerts.owner_alerts_digest(now=timezone.now() + dt.timedelta(hours=1))
    assert len(notify_receiver.received) == 1  # each task once


@override_settings(NOTIFY_SANDBOX=False, PUBLIC_BASE_URL=BASE)
def test_an_owner_with_urls_of_their_own_is_alerted_there_not_the_team(client, notify_receiver):
    pat = user("pquinn")
    NotificationTarget.objects.create(user=pat, urls=notify_receiver.url)
    NotificationTarget.objects.create(team="billing", urls=closed_port_url())
    attempt = make_dialing_attempt(client_name="Jordan Avery", phone="+12125550199")
    Account.objects.filter(client_id=attempt.queue_item.client_id).update(owner="pquinn")
    assert post_signed(client, analyzed(attempt, analysis=call_analysis(custom={"dispute": True}))).status_code == 204
    assert [m["message"] for m in notify_receiver.received] == [f"Dispute — Jordan, phone ending 0199: {timeline(attempt.queue_item.client_id)}"]


@override_settings(NOTIFY_SANDBOX=False, PUBLIC_BASE_URL=BASE)
def test_a_failed_alert_keeps_the_task_and_is_retried_until_it_goes(client, notify_receiver):
    target = NotificationTarget.objects.create(team="billing", urls=closed_port_url())
    attempt = analyze(client, {"dispute": True})
    task = task_of(attempt)
    assert task.alerted_at is None and task.alert_attempts == 1 and task.alert_retry_at is not None
    assert task.status == FollowUpTask.Status.OPEN and "not accepted" in task.alert_error
    assert "127.0.0.1" not in task.alert_error  # the URL (a secret) is not kept

    now = timezone.now()
    assert alerts.owner_alerts_sweep(now=now).sent == 0  # not before its retry time
    alerts.owner_alerts_sweep(now=now + dt.timedelta(minutes=2))
    alerts.owner_alerts_sweep(now=now + dt.timedelta(minutes=10))
    task.refresh_from_db()
    assert task.alert_attempts == 3 and task.alerted_at is None
    assert Alert.objects.filter(source="owner-alerts").count() == 1

    target.urls = notify_receiver.url
    target.save()
    assert alerts.owner_alerts_sweep(now=now + dt.timedelta(hours=1)).sent == 1
    task.refresh_from_db()
    assert task.alerted_at is not None and task.alert_error == ""
    assert len(notify_receiver.received) == 1
    assert alerts.owner_alerts_digest(now=now + dt.timedelta(hours=2)).sent == 0


@override_settings(NOTIFY_SANDBOX=False, PUBLIC_BASE_URL=BASE)
def test_a_receiver_answering_an_error_counts_as_a_failure(client, notify_receiver):
    notify_receiver.status = 500
    NotificationTarget.objects.create(team="billing", urls=notify_receiver.url)
    attempt = analyze(client, {"legal_language": True})
    task = task_of(attempt)
    assert len(notify_receiver.received) == 1 and task.alerted_at is None and task.alert_attempts == 1


@override_settings(NOTIFY_SANDBOX=True, PUBLIC_BASE_URL=BASE)
def test_in_sandbox_mode_the_sink_records_what_would_have_been_sent(client, notify_receiver):
    NotificationTarget.objects.create(team="billing", urls=notify_receiver.url)
    attempt = analyze(client, {"dispute": True}, client_name="Jordan Avery", phone="+12125550147")
    assert notify_receiver.received == []
    sunk = SimulatedNotification.objects.get()
    assert sunk.tag == "immediate" and sunk.title == "Dispute: a follow-up task needs you"
    assert sunk.body == f"Dispute — Jordan, phone ending 0147: {timeline(attempt.queue_item.client_id)}"
    assert "json" in sunk.destination and notify_receiver.url not in sunk.destination
    assert task_of(attempt).alerted_at is not None


@override_settings(NOTIFY_SANDBOX=False, PUBLIC_BASE_URL=BASE)
def test_without_any_url_configured_the_sink_records_the_alert(client):
    analyze(client, {"dispute": True})
    assert SimulatedNotification.objects.get().destination == "team Billing (no notification URL)"


def test_the_alert_schedules_install_idempotently():
    schedules.schedules_install()
    schedules.schedules_install()
    from django_q.models import Schedule

    assert Schedule.objects.get(name="owner-alerts").func == "campaigns.tasks.owner_alerts_sweep_task"
    digest = Schedule.objects.get(name="owner-alerts-digest")
    assert digest.func == "campaigns.tasks.owner_alerts_digest_task" and digest.minutes == 60


# --- The admin -----------------------------------------------------------------------------------


def test_the_admin_never_shows_notification_urls_back(admin_client):
    secret = "slack://T1234/B5678/SuperSecretToken/#billing"
    response = admin_client.post(
        "/admin/campaigns/notificationtarget/add/", {"team": "billing", "user": "", "urls": secret, "active": "on"}
    )
    assert response.status_code == 302
    target = NotificationTarget.objects.get()
    assert target.urls == secret
    listing = admin_client.get("/admin/campaigns/notificationtarget/").content.decode()
    page = admin_client.get(f"/admin/campaigns/notificationtarget/{target.pk}/change/").content.decode()
    assert "SuperSecretToken" not in listing + page and "slack" in listing
    # Saved without new URLs, the stored ones stay.
    admin_client.post(f"/admin/campaigns/notificationtarget/{target.pk}/change/", {"team": "billing", "user": "", "urls": "", "active": "on"})
    target.refresh_from_db()
    assert target.urls == secret


def test_the_admin_refuses_a_url_apprise_does_not_know(admin_client):
    response = admin_client.post("/admin/campaigns/notificationtarget/add/", {"team": "billing", "user": "", "urls": "nosuch://x/y", "active": "on"})
    assert response.status_code == 200 and "nosuch" in response.content.decode()
    assert not NotificationTarget.objects.exists()
