"""What a conversation produced: promises to pay, escalations, callbacks, do-not-call; promise review."""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from cadences.models import Phase
from campaigns.models import Callback, FollowUpTask, PromiseToPay, QueueItem, Suppression
from campaigns.conversations.promises import promise_review
from campaigns.conversations.results import analysis_flag, parse_promise_amount, parse_promise_date
from campaigns.conversations import promises
from tests.campaigns.conftest import client_row
from tests.campaigns.retell_factories import analyzed, call_analysis, make_dialing_attempt, post_signed, retell_tasks_inline  # noqa: F401 - a fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("retell_tasks_inline")]

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def analyze(client, custom, **item_fields):
    attempt = make_dialing_attempt(**item_fields)
    payload = analyzed(attempt, analysis=call_analysis(custom=custom, summary="Client discussed the balance."))
    assert post_signed(client, payload).status_code == 204
    return attempt


def local_today() -> dt.date:
    return timezone.now().astimezone(NEW_YORK).date()


# --- Promise to pay ----------------------------------------------------------------------------


def test_a_promise_to_pay_is_recorded_with_a_reminder_the_morning_before(client):
    promised = local_today() + dt.timedelta(days=5)
    attempt = analyze(client, {"promise_to_pay_date": promised.isoformat(), "promise_to_pay_amount": 125.5})
    promise = PromiseToPay.objects.get()
    assert promise.call_id == attempt.call_id
    assert promise.client_id == attempt.queue_item.client_id
    assert promise.client_name == "Jordan Avery"
    assert promise.amount == Decimal("125.50")
    assert promise.promised_date == promised
    assert promise.status == PromiseToPay.Status.PENDING
    assert promise.reminder_at == dt.datetime.combine(promised - dt.timedelta(days=1), dt.time(9, 0), tzinfo=NEW_YORK)
    assert promise.segment_name == attempt.queue_item.segment.name and promise.phase == Phase.PAST_DUE


def test_a_replayed_analysis_records_the_promise_once(client):
    promised = local_today() + dt.timedelta(days=3)
    attempt = make_dialing_attempt()
    payload = analyzed(attempt, analysis=call_analysis(custom={"promise_to_pay_date": promised.isoformat()}))
    for _ in range(3):
        post_signed(client, payload)
    assert PromiseToPay.objects.count() == 1
    assert PromiseToPay.objects.get().amount is None


def test_a_promise_for_today_has_no_reminder_left_to_send(client):
    analyze(client, {"promise_to_pay_date": local_today().isoformat(), "promise_to_pay_amount": "$1,250.00"})
    promise = PromiseToPay.objects.get()
    assert promise.reminder_at is None
    assert promise.amount == Decimal("1250.00")


@pytest.mark.parametrize("bad", ["sometime soon", "2021-01-01", "13/45/2025"])
def test_a_promise_with_an_unusable_date_is_not_recorded_and_is_logged(client, caplog, bad):
    with caplog.at_level(logging.WARNING, logger="campaigns.calls.outcomes"):
        attempt = analyze(client, {"promise_to_pay_date": bad, "promise_to_pay_amount": 50})
    assert PromiseToPay.objects.count() == 0
    assert any("unusable date" in r.getMessage() for r in caplog.records)
    # The rest of the event still applied.
    attempt.refresh_from_db()
    assert attempt.outcome == "answered" and attempt.custom_analysis["promise_to_pay_date"] == bad


def test_promise_dates_and_amounts_in_the_spellings_the_analysis_produces():
    today = dt.date(2025, 6, 10)
    assert parse_promise_date("2025-06-20", today=today) == dt.date(2025, 6, 20)
    assert parse_promise_date("06/20/2025", today=today) == dt.date(2025, 6, 20)
    assert parse_promise_date("June 20th, 2025", today=today) == dt.date(2025, 6, 20)
    assert parse_promise_date("June 20", today=today) == dt.date(2025, 6, 20)
    assert parse_promise_date("January 5", today=today) == dt.date(2026, 1, 5)
    assert parse_promise_date("next Friday", today=today) is None
    assert parse_promise_date(20250620, today=today) is None
    # After Feb 29 of a leap year there is no Feb 29 next year: the date is unusable, not a crash.
    assert parse_promise_date("Feb 29", today=dt.date(2028, 3, 1)) is None
    assert parse_promise_date("February 29", today=dt.date(2028, 2, 1)) == dt.date(2028, 2, 29)
    assert parse_promise_amount("$1,250.00") == Decimal("1250.00")
    assert parse_promise_amount(99.999) == Decimal("100.00")
    assert parse_promise_amount("USD 40") == Decimal("40.00")
    assert parse_promise_amount("a lot") is None
    assert parse_promise_amount(-5) is None
    assert parse_promise_amount("0.004") is None  # rounds to no money at all
    assert parse_promise_amount("0.005") == Decimal("0.01")
    assert parse_promise_amount(True) is None


def test_analysis_flags_accept_booleans_and_text():
    assert analysis_flag(True) == (True, "")
    assert analysis_flag(False) == (False, "")
    assert analysis_flag("yes") == (True, "")
    assert analysis_flag("No") == (False, "")
    assert analysis_flag("N/A") == (False, "")
    assert analysis_flag("  ") == (False, "")
    assert analysis_flag(None) == (False, "")
    assert analysis_flag("Says the charge is not theirs") == (True, "Says the charge is not theirs")


# --- Escalations -------------------------------------------------------------------------------


def test_a_dispute_opens_a_task_and_holds_all_outreach(client):
    before = timezone.now()
    attempt = analyze(client, {"dispute": "Client says the amount was already paid in May."})
    task = FollowUpTask.objects.get()
    assert task.kind == FollowUpTask.Kind.DISPUTE
    assert task.status == FollowUpTask.Status.OPEN
    assert task.team == "billing"
    assert task.owner is None
    assert task.source_ref == attempt.call_id
    assert task.client_id == attempt.queue_item.client_id and task.client_name == "Jordan Avery"
    assert before + dt.timedelta(days=1) <= task.due_at <= timezone.now() + dt.timedelta(days=1)
    assert "already paid in May" in task.detail and "Client discussed the balance." in task.detail
    hold = Suppression.objects.get()
    assert (hold.reason, hold.channel, hold.lifted_at) == ("dispute_hold", "all", None)
    assert hold.client_id == attempt.queue_item.client_id and hold.phone == attempt.to_number


def test_a_resurrection_client_escalates_to_the_resurrection_team(client):
    analyze(client, {"hardship": True}, team="resurrection", phase=Phase.RE_ENGAGEMENT)
    assert FollowUpTask.objects.get().team == "resurrection"


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("hardship", FollowUpTask.Kind.HARDSHIP),
        ("cancellation_request", FollowUpTask.Kind.CANCELLATION_REQUEST),
        ("vulnerable_customer", FollowUpTask.Kind.VULNERABLE_CUSTOMER),
        ("legal_language", FollowUpTask.Kind.LEGAL_LANGUAGE),
    ],
)
def test_each_escalation_opens_its_task_without_a_suppression(client, field, kind):
    analyze(client, {field: True})
    task = FollowUpTask.objects.get()
    assert task.kind == kind
    assert task.due_at > timezone.now()
    assert Suppression.objects.count() == 0


def test_legal_language_naming_an_attorney_also_suppresses_outreach(client):
    analyze(client, {"legal_language": "Client said their attorney handles this and we should call the lawyer."})
    assert FollowUpTask.objects.get().kind == FollowUpTask.Kind.LEGAL_LANGUAGE
    suppression = Suppression.objects.get()
    assert (suppression.reason, suppression.channel) == ("attorney", "all")


def test_several_flags_on_one_call_open_one_task_each_once(client):
    attempt = make_dialing_attempt()
    custom = {"dispute": True, "hardship": "lost job", "vulnerable_customer": "yes", "cancellation_request": False}
    payload = analyzed(attempt, analysis=call_analysis(custom=custom))
    post_signed(client, payload)
    post_signed(client, payload)
    kinds = sorted(FollowUpTask.objects.values_list("kind", flat=True))
    assert kinds == ["dispute", "hardship", "vulnerable_customer"]
    assert Suppression.objects.count() == 1


def test_a_call_with_nothing_to_follow_up_creates_nothing(client):
    analyze(client, {"dispute": False, "hardship": "no", "callback_requested": False, "promise_to_pay_date": ""})
    assert FollowUpTask.objects.count() == 0
    assert PromiseToPay.objects.count() == 0
    assert Suppression.objects.count() == 0


def test_do_not_call_requested_in_the_analysis_suppresses_calls(client):
    attempt = analyze(client, {"user_requested_dnc": True})
    suppression = Suppression.objects.get()
    assert (suppression.reason, suppression.channel) == ("do_not_call", "call")
    assert suppression.phone == attempt.to_number


# --- Callback --------------------------------------------------------------------------------


def test_a_callback_request_is_scheduled_at_the_requested_time(client):
    when = dt.datetime.combine(local_today() + dt.timedelta(days=2), dt.time(15, 30), tzinfo=NEW_YORK)
    attempt = analyze(client, {"callback_requested": True, "callback_time": when.isoformat()})
    # A booked callback the release loop dials, not a task; the finished item keeps no retry time.
    callback = Callback.objects.get()
    assert (callback.due_at, callback.consent_call_id) == (when, attempt.call_id)
    assert not FollowUpTask.objects.exists()
    item = QueueItem.objects.get(pk=attempt.queue_item_id)
    assert item.next_attempt_at is None


def test_a_callback_asked_for_late_at_night_moves_into_the_calling_window(client):
    # 22:30 New York time is outside 08:00–21:00: the callback is due at 08:00 the next morning.
    day = local_today() + dt.timedelta(days=2)
    analyze(client, {"callback_requested": "yes", "callback_time": f"{day.isoformat()}T22:30:00"})
    # The nearest allowed time: the window's last quarter hour that evening.
    assert Callback.objects.get().due_at == dt.datetime.combine(day, dt.time(20, 45), tzinfo=NEW_YORK)


def test_a_callback_across_two_time_zones_waits_for_both_windows(client):
    day = local_today() + dt.timedelta(days=2)
    # 09:00 New York is 06:00 Los Angeles: wait until 08:00 in Los Angeles (11:00 New York).
    analyze(
        client,
        {"callback_requested": True, "callback_time": f"{day.isoformat()}T09:00:00"},
        timezones="America/New_York,America/Los_Angeles",
    )
    assert Callback.objects.get().due_at == dt.datetime.combine(day, dt.time(11, 0), tzinfo=NEW_YORK)


def test_a_callback_without_a_usable_time_is_due_now(client):
    before = timezone.now()
    analyze(client, {"callback_requested": True, "callback_time": "after lunch"})
    task = FollowUpTask.objects.get()
    assert task.kind == FollowUpTask.Kind.CALLBACK_REQUEST
    assert task.due_at >= before - dt.timedelta(seconds=1)
    assert "after lunch" in task.detail


@pytest.mark.parametrize("far", ["9999-12-31", "9999-12-31T23:30:00", "9999-12-31T23:59:59-12:00", "2999-01-01T10:00:00"])
def test_a_callback_time_beyond_any_calendar_is_due_now_and_the_call_still_resolves(client, far):
    # Next-window arithmetic past year 9999 overflowed, and the whole analysed event failed with it.
    before = timezone.now()
    attempt = analyze(client, {"callback_requested": True, "callback_time": far})
    task = FollowUpTask.objects.get()
    assert before - dt.timedelta(seconds=1) <= task.due_at <= timezone.now() + dt.timedelta(days=1)
    assert far in task.detail
    attempt.refresh_from_db()
    assert attempt.outcome == "answered"


# --- Promise review ------------------------------------------------------------------------------


def promise(client_id: str, *, days_ago: int, amount: str = "80.00") -> PromiseToPay:
    return PromiseToPay.objects.create(
        client_id=client_id,
        client_name=f"Client {client_id}",
        phone="+12125550111",
        phase=Phase.PRE_SUSPENSION,
        amount=Decimal(amount),
        promised_date=timezone.localdate() - dt.timedelta(days=days_ago),
        call_id=f"call_{client_id}",
    )


def test_promise_review_marks_kept_broken_and_leaves_the_undecided():
    paid = promise("P1", days_ago=2)
    unpaid = promise("P2", days_ago=1)
    unknown = promise("P3", days_ago=3)
    not_due = promise("P4", days_ago=0)
    now = timezone.now()
    review = promise_review(now=now, still_past_due={"P1": False, "P2": True, "P4": True})
    assert (review.kept, review.broken, review.undecided) == (1, 1, 1)
    for row in (paid, unpaid, unknown, not_due):
        row.refresh_from_db()
    assert (paid.status, paid.amount_recovered, paid.resolved_at) == ("kept", Decimal("80.00"), now)
    assert (unpaid.status, unpaid.amount_recovered) == ("broken", None)
    assert unknown.status == not_due.status == "pending"
    task = FollowUpTask.objects.get()
    assert task.kind == FollowUpTask.Kind.BROKEN_PROMISE and task.source_ref == "call_P2"
    assert task.client_id == "P2" and task.team == "billing"
    # A second review changes nothing and opens no second task.
    again = promise_review(now=now, still_past_due={"P1": False, "P2": True})
    assert (again.kept, again.broken) == (0, 0)
    assert FollowUpTask.objects.count() == 1


def test_promise_review_asks_the_warehouse_who_is_still_past_due(sample_warehouse):
    sample_warehouse.add([client_row(client_id="P1"), client_row(client_id="P2"), client_row(client_id="OTHER")])
    sample_warehouse.resolve(["P1"])  # P1 paid: the queue query no longer returns them
    promise("P1", days_ago=1)
    promise("P2", days_ago=1)
    review = promises.promise_review_run(now=timezone.now())
    assert (review.kept, review.broken) == (1, 1)
    assert dict(PromiseToPay.objects.values_list("client_id", "status")) == {"P1": "kept", "P2": "broken"}


def test_a_partly_kept_promise_is_reviewed_once_when_its_date_has_passed():
    short = promise("S1", days_ago=1)
    settled_elsewhere = promise("S2", days_ago=1)
    not_due = promise("S3", days_ago=0)
    PromiseToPay.objects.filter(pk__in=[short.pk, settled_elsewhere.pk, not_due.pk]).update(
        status=PromiseToPay.Status.PARTLY_KEPT, amount_recovered=Decimal("30.00")
    )
    now = timezone.now()
    review = promise_review(now=now, still_past_due={"S1": True, "S2": False, "S3": True})
    assert (review.short, review.kept, review.broken) == (1, 1, 0)
    for row in (short, settled_elsewhere, not_due):
        row.refresh_from_db()
    assert (short.status, short.amount_recovered, short.reviewed_at) == ("partly_kept", Decimal("30.00"), now)
    # The warehouse no longer returns S2 as past due: the rest was paid some other way.
    assert (settled_elsewhere.status, settled_elsewhere.amount_recovered) == ("kept", Decimal("80.00"))
    assert (not_due.status, not_due.reviewed_at) == ("partly_kept", None)
    task = FollowUpTask.objects.get()
    assert (task.kind, task.client_id, task.source_ref) == (FollowUpTask.Kind.PROMISE_PARTLY_KEPT, "S1", "call_S1")
    assert "$30.00 paid, $50.00 short" in task.detail
    again = promise_review(now=now + dt.timedelta(days=1), still_past_due={"S1": True})
    assert (again.short, again.kept, again.undecided) == (0, 0, 1)  # S3, due by then, not asked about
    assert FollowUpTask.objects.count() == 1


def test_promise_review_does_not_query_the_warehouse_when_nothing_is_due(tmp_path):
    promise("P9", days_ago=0)
    with override_settings(WAREHOUSE_URL=f"sqlite:///{tmp_path / 'missing' / 'nope.sqlite3'}"):
        review = promises.promise_review_run(now=timezone.now())
    assert (review.kept, review.broken, review.undecided) == (0, 0, 0)


# --- The supervisor's admin lists ---------------------------------------------------------------


@pytest.fixture
def supervisor(django_user_model):
    return django_user_model.objects.create_superuser("supervisor", "supervisor@example.com", "a-long-test-password")


def test_the_follow_up_queue_lists_tasks_and_assigns_them(client, supervisor):
    analyze(client, {"dispute": True, "hardship": True})
    client.force_login(supervisor)
    page = client.get("/admin/campaigns/followuptask/?status__exact=open")
    assert page.status_code == 200
    assert page.content.decode().count("Jordan Avery") >= 2
    ids = list(FollowUpTask.objects.values_list("pk", flat=True))
    response = client.post(
        "/admin/campaigns/followuptask/", {"action": "assign_to_me", "_selected_action": ids}, follow=True
    )
    assert response.status_code == 200
    assert set(FollowUpTask.objects.values_list("owner", flat=True)) == {supervisor.pk}
    client.post("/admin/campaigns/followuptask/", {"action": "mark_done", "_selected_action": ids[:1]})
    done = FollowUpTask.objects.get(pk=ids[0])
    assert done.status == FollowUpTask.Status.DONE and done.resolved_at is not None


def test_staff_can_mark_a_promise_broken_which_opens_a_task(client, supervisor):
    kept = promise("K1", days_ago=-3)
    broken = promise("B1", days_ago=-3)
    client.force_login(supervisor)
    assert client.get("/admin/campaigns/promisetopay/").status_code == 200
    client.post("/admin/campaigns/promisetopay/", {"action": "mark_kept", "_selected_action": [kept.pk]})
    client.post("/admin/campaigns/promisetopay/", {"action": "mark_broken", "_selected_action": [broken.pk]})
    kept.refresh_from_db()
    broken.refresh_from_db()
    assert (kept.status, kept.amount_recovered) == ("kept", Decimal("80.00"))
    assert broken.status == "broken"
    assert FollowUpTask.objects.get().kind == FollowUpTask.Kind.BROKEN_PROMISE
