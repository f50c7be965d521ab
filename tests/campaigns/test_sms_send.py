"""Sending through the sandbox HeyMarket over real HTTP: once per touchpoint, gated, counted."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule

from cadences.models import DialerSettings, Segment
from campaigns import tasks
from campaigns.models import CallAttempt, Campaign, ContactLedgerEntry, GateDecision, QueueItem, SmsMessage, Suppression
from campaigns.compliance import ledger
from campaigns import schedules
from campaigns.sms import outbound as sms
from campaigns.transitions import campaign_recount, queue_item_transition
from integrations import http
from integrations.heymarket import client as heymarket
from integrations.sandbox.models import SimulatedMessage
from tests.campaigns.sms_factories import CAMPAIGN_DATE, queue_item, running_campaign, shipped_cadences, sms_step  # noqa: F401 (fixture)
from tests.campaigns.retell_factories import ended, post_signed
from tests.integrations.conftest import StubServer

# Real HTTP to the simulator served by live_server needs committed data (see shipped_cadences).
pytestmark = pytest.mark.django_db(transaction=True)

NY = ZoneInfo("America/New_York")
MORNING = dt.datetime.combine(CAMPAIGN_DATE, dt.time(11, 0), tzinfo=NY)


@pytest.fixture
def heymarket_sandbox(settings, live_server, shipped_cadences, monkeypatch):
    settings.HEYMARKET_API_TOKEN = ""
    settings.SANDBOX_APP_URL = live_server.url
    # Same retry counts and statuses as production, without seconds of backoff.
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setattr(http, "BACKOFF_JITTER", 0.0)
    http.reset_sessions()
    yield live_server
    http.reset_sessions()


@pytest.fixture
def failing_vendor(settings) -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.close()


def outbound(phone: str) -> list[SimulatedMessage]:
    return list(SimulatedMessage.objects.filter(direction=SimulatedMessage.Direction.OUTBOUND, phone=phone.lstrip("+")))


def due_item(campaign: Campaign, *, due: dt.datetime = MORNING, **fields) -> QueueItem:
    item = queue_item(campaign, **fields)
    QueueItem.objects.filter(pk=item.pk).update(sms_due_at=due)
    item.refresh_from_db()
    return item


def counters_match_recount(campaign: Campaign) -> None:
    campaign.refresh_from_db()
    recount = campaign_recount(campaign=campaign)
    assert {name: getattr(campaign, name) for name in recount} == recount


def test_a_due_text_goes_out_once_with_the_exact_text_stored(heymarket_sandbox):
    dialer = DialerSettings.load()
    dialer.company_name = "Northwind Recovery"
    dialer.save()
    campaign = running_campaign()
    item = due_item(campaign)

    report = sms.sms_send_due(now=MORNING)

    assert report.sent == 1
    message = SmsMessage.objects.get(queue_item=item)
    recorded = outbound(item.phone)
    assert len(recorded) == 1
    assert recorded[0].text == message.text
    assert recorded[0].local_id == message.local_id == f"qi-20250610-{item.client_id}-touchpoint"
    assert recorded[0].inbox_id == item.inbox_id
    assert "Northwind Recovery" in message.text
    assert message.status == SmsMessage.Status.SENT and message.heymarket_id == str(recorded[0].pk)
    assert message.phase == item.phase and message.phase  # kept on the text past the flush
    item.refresh_from_db()
    assert item.status == QueueItem.Status.SMS_SENT and item.sms_status == QueueItem.SmsStatus.SENT
    entry = ContactLedgerEntry.objects.get(reference=message.local_id)
    assert entry.kind == ContactLedgerEntry.Kind.SMS and entry.client_id == item.client_id
    assert entry.outcome == sms.LEDGER_SENT_WITH_NOTICE
    counters_match_recount(campaign)
    assert campaign.sms_sent == 1

    # However often the task runs afterwards, the touchpoint is not texted again.
    for minutes in (1, 15, 60):
        sms.sms_send_due(now=MORNING + dt.timedelta(minutes=minutes))
    assert len(outbound(item.phone)) == 1
    counters_match_recount(campaign)


def test_nothing_goes_out_before_its_time(heymarket_sandbox):
    campaign = running_campaign()
    item = due_item(campaign, due=MORNING + dt.timedelta(minutes=30))
    assert sms.sms_send_due(now=MORNING).claimed == 0
    assert outbound(item.phone) == []


def test_texts_of_a_paused_campaign_wait(heymarket_sandbox):
    campaign = running_campaign(status=Campaign.Status.PAUSED)
    item = due_item(campaign)
    sms.sms_send_due(now=MORNING)
    assert outbound(item.phone) == []
    item.refresh_from_db()
    assert item.sms_status == QueueItem.SmsStatus.SCHEDULED


def test_a_scheduled_day_is_sent_by_the_minute_task(heymarket_sandbox):
    campaign = running_campaign()
    items = [queue_item(campaign, timezones=zone) for zone in ("America/New_York", "America/Chicago", "America/Los_Angeles")]
    sms.sms_schedule(campaign=campaign, now=dt.datetime.combine(CAMPAIGN_DATE, dt.time(5), tzinfo=dt.timezone.utc), rng=random.Random(4))
    minute = dt.datetime.combine(CAMPAIGN_DATE, dt.time(13, 59), tzinfo=dt.timezone.utc)  # 09:59 in New York
    sent_at: dict[int, dt.datetime] = {}
    while minute < dt.datetime.combine(CAMPAIGN_DATE, dt.time(21), tzinfo=dt.timezone.utc):
        report = sms.sms_send_due(now=minute)
        for pk, outcome in report.outcomes.items():
            assert outcome == "sent"
            sent_at[pk] = minute
        minute += dt.timedelta(minutes=1)
    assert set(sent_at) == {i.pk for i in items}
    for item in items:
        local = sent_at[item.pk].astimezone(ZoneInfo(item.timezones))
        assert dt.time(10, 0) <= local.time() <= dt.time(13, 0), local
        assert len(outbound(item.phone)) == 1
    counters_match_recount(campaign)


def test_a_crash_after_the_http_call_never_texts_twice(heymarket_sandbox, monkeypatch):
    campaign = running_campaign()
    item = due_item(campaign)
    real_mark_sent = sms._mark_sent

    def crash(**kwargs):
        raise RuntimeError("worker killed after HeyMarket accepted the text")

    monkeypatch.setattr(sms, "_mark_sent", crash)
    with pytest.raises(RuntimeError):
        sms.sms_send_due(now=MORNING)
    assert len(outbound(item.phone)) == 1
    item.refresh_from_db()
    assert item.sms_status == QueueItem.SmsStatus.SENDING  # still claimed by the dead worker

    monkeypatch.setattr(sms, "_mark_sent", real_mark_sent)
    # Within the claim lease nobody else takes it.
    assert sms.sms_send_due(now=MORNING + dt.timedelta(minutes=5)).claimed == 0
    report = sms.sms_send_due(now=MORNING + sms.CLAIM_LEASE)
    assert report.sent == 1
    recorded = outbound(item.phone)
    assert len(recorded) == 1  # HeyMarket answered the replay with the first message
    message = SmsMessage.objects.get(queue_item=item)
    assert message.heymarket_id == str(recorded[0].pk) and message.send_attempts == 2
    assert ContactLedgerEntry.objects.filter(reference=message.local_id).count() == 1
    counters_match_recount(campaign)
    assert Campaign.objects.get(pk=campaign.pk).sms_sent == 1


def test_two_workers_claiming_the_same_minute_send_once(heymarket_sandbox):
    campaign = running_campaign()
    item = due_item(campaign)
    first = sms._claim_due(now=MORNING, limit=10)
    second = sms._claim_due(now=MORNING, limit=10)
    assert first == [item.pk] and second == []
    sms.sms_send_items(item_ids=first + second, now=MORNING)
    sms.sms_send_items(item_ids=first, now=MORNING)  # a retried task with the same ids
    assert len(outbound(item.phone)) == 1
    counters_match_recount(campaign)


def test_429_and_5xx_back_off_and_retry_later_under_the_same_local_id(heymarket_sandbox, failing_vendor, settings):
    campaign = running_campaign()
    item = due_item(campaign)
    failing_vendor.answer((503, {"error": "upstream unavailable"}))
    settings.SANDBOX_APP_URL = failing_vendor.url

    report = sms.sms_send_due(now=MORNING)

    assert report.rescheduled == 1
    # The client's own bounded retries: the first try and three more, all with the same local_id.
    assert len(failing_vendor.requests) == 1 + http.MAX_RETRIES
    local_ids = {r.json()["local_id"] for r in failing_vendor.requests}
    message = SmsMessage.objects.get(queue_item=item)
    assert local_ids == {message.local_id}
    item.refresh_from_db()
    assert item.sms_status == QueueItem.SmsStatus.SCHEDULED and item.status == QueueItem.Status.SMS_SCHEDULED
    assert item.sms_due_at == MORNING + sms.RETRY_BASE
    assert message.status == SmsMessage.Status.PENDING and "503" in message.error and message.send_attempts == 1

    failing_vendor.answer((429, {"error": "rate limited"}))
    sms.sms_send_due(now=item.sms_due_at)
    item.refresh_from_db()
    assert item.sms_due_at == MORNING + sms.RETRY_BASE + 2 * sms.RETRY_BASE  # backoff doubles

    settings.SANDBOX_APP_URL = heymarket_sandbox.url  # the vendor is back
    report = sms.sms_send_due(now=item.sms_due_at)
    assert report.sent == 1
    recorded = outbound(item.phone)
    assert len(recorded) == 1 and recorded[0].text == SmsMessage.objects.get(pk=message.pk).text
    counters_match_recount(campaign)


def test_a_vendor_down_all_day_ends_in_a_recorded_failure(heymarket_sandbox, failing_vendor, settings):
    campaign = running_campaign()
    item = due_item(campaign)
    failing_vendor.answer((502, {"error": "bad gateway"}))
    settings.SANDBOX_APP_URL = failing_vendor.url
    now = MORNING
    for _ in range(sms.MAX_SEND_ATTEMPTS):
        sms.sms_send_due(now=now)
        item.refresh_from_db()
        now = item.sms_due_at
    assert item.status == QueueItem.Status.SMS_FAILED and item.sms_status == QueueItem.SmsStatus.FAILED
    assert item.skip_reason == "sms_unavailable"
    message = SmsMessage.objects.get(queue_item=item)
    assert message.status == SmsMessage.Status.FAILED and f"after {sms.MAX_SEND_ATTEMPTS} attempts" in message.error
    counters_match_recount(campaign)
    assert Campaign.objects.get(pk=campaign.pk).sms_failed == 1


def test_a_400_fails_the_text_with_the_vendors_reason(heymarket_sandbox):
    campaign = running_campaign()
    item = due_item(campaign)
    # The client opted out inside HeyMarket (not yet known here): HeyMarket refuses the send.
    heymarket.set_contact_status(item.phone, opted_out=True)

    report = sms.sms_send_due(now=MORNING)

    assert report.failed == 1
    item.refresh_from_db()
    assert item.status == QueueItem.Status.SMS_FAILED and item.skip_reason == "sms_rejected"
    assert "opted out" in item.skip_detail["error"] and item.skip_detail["status"] == 400
    message = SmsMessage.objects.get(queue_item=item)
    assert message.status == SmsMessage.Status.FAILED and "opted out" in message.error
    assert outbound(item.phone) == []
    assert not ContactLedgerEntry.objects.filter(reference=message.local_id).exists()
    counters_match_recount(campaign)
    # A failed text is final: later runs neither resend nor recount it.
    sms.sms_send_due(now=MORNING + dt.timedelta(hours=1))
    counters_match_recount(campaign)
    assert Campaign.objects.get(pk=campaign.pk).sms_failed == 1


@pytest.mark.parametrize("target", ["phone", "client_id"])
def test_a_suppressed_number_is_never_texted(heymarket_sandbox, target):
    campaign = running_campaign()
    item = due_item(campaign)
    ledger.suppression_add(
        reason=Suppression.Reason.SMS_OPT_OUT if target == "phone" else Suppression.Reason.CEASE_COMMUNICATION,
        channel=Suppression.Channel.SMS if target == "phone" else Suppression.Channel.ALL,
        source="test",
        **{target: getattr(item, target)},
    )
    report = sms.sms_send_due(now=MORNING)
    assert report.skipped == 1
    assert outbound(item.phone) == []
    assert not SmsMessage.objects.filter(queue_item=item).exists()
    item.refresh_from_db()
    assert item.status == QueueItem.Status.SKIPPED and item.skip_reason == "suppressed"
    decision = GateDecision.objects.get(queue_item=item)
    assert decision.channel == "sms" and decision.rule == "suppressed"
    sms.sms_send_due(now=MORNING + dt.timedelta(hours=1))
    assert outbound(item.phone) == []


def test_a_call_only_suppression_does_not_stop_texts(heymarket_sandbox):
    campaign = running_campaign()
    item = due_item(campaign)
    ledger.suppression_add(reason=Suppression.Reason.DO_NOT_CALL, channel=Suppression.Channel.CALL, source="test", phone=item.phone)
    sms.sms_send_due(now=MORNING)
    assert len(outbound(item.phone)) == 1


@pytest.mark.parametrize(
    "local_time, zones",
    [
        (dt.time(21, 0), "America/New_York"),
        (dt.time(7, 59), "America/New_York"),
        # 09:00 in New York is 06:00 in Los Angeles: an ambiguous client waits for both.
        (dt.time(9, 0), "America/New_York,America/Los_Angeles"),
    ],
)
def test_outside_the_local_window_nothing_is_texted(heymarket_sandbox, local_time, zones):
    campaign = running_campaign()
    now = dt.datetime.combine(CAMPAIGN_DATE, local_time, tzinfo=NY)
    item = due_item(campaign, due=now, timezones=zones)
    report = sms.sms_send_due(now=now)
    assert report.rescheduled == 1
    assert outbound(item.phone) == []
    item.refresh_from_db()
    assert item.sms_status == QueueItem.SmsStatus.SCHEDULED
    # Rescheduled to the first instant every candidate zone is at 08:00 or later.
    for zone in zones.split(","):
        assert item.sms_due_at.astimezone(ZoneInfo(zone)).time() >= dt.time(8, 0)
    assert item.sms_due_at > now
    assert GateDecision.objects.get(queue_item=item).rule == "outside_local_window"
    # At that time it goes out.
    assert sms.sms_send_due(now=item.sms_due_at).sent == 1
    assert len(outbound(item.phone)) == 1


def test_the_campaign_window_narrows_texts_too(heymarket_sandbox):
    campaign = running_campaign(calling_window_start=dt.time(9, 0), calling_window_end=dt.time(17, 0))
    now = dt.datetime.combine(CAMPAIGN_DATE, dt.time(17, 30), tzinfo=NY)
    item = due_item(campaign, due=now)
    sms.sms_send_due(now=now)
    assert outbound(item.phone) == []
    item.refresh_from_db()
    assert item.sms_due_at.astimezone(NY) == dt.datetime.combine(CAMPAIGN_DATE + dt.timedelta(days=1), dt.time(9), tzinfo=NY)


def _both_item_after_voicemail(campaign: Campaign, *, now: dt.datetime, **fields) -> QueueItem:
    """A BOTH item whose call ended in voicemail: the webhook code schedules its SMS for now."""
    item = queue_item(campaign, action_type="BOTH", **fields)
    S = QueueItem.Status
    for source, target in ((S.QUEUED, S.RELEASING), (S.RELEASING, S.DIALING)):
        assert queue_item_transition(item_id=item.pk, from_statuses=[source], to_status=target)
    assert queue_item_transition(
        item_id=item.pk,
        from_statuses=[S.DIALING],
        to_status=S.VOICEMAIL,
        sms_status=QueueItem.SmsStatus.SCHEDULED,
        sms_due_at=now,
    )
    item.refresh_from_db()
    return item


def test_both_items_text_right_after_a_voicemail(heymarket_sandbox):
    campaign = running_campaign()
    now = dt.datetime.combine(CAMPAIGN_DATE, dt.time(15, 42), tzinfo=NY)  # outside 10–13: not an SMS-only rule
    item = _both_item_after_voicemail(campaign, now=now)
    report = sms.sms_send_due(now=now)
    assert report.sent == 1
    message = SmsMessage.objects.get(queue_item=item)
    assert message.kind == SmsMessage.Kind.FOLLOW_UP and message.local_id.endswith("-follow_up")
    item.refresh_from_db()
    assert item.status == QueueItem.Status.VOICEMAIL  # the call outcome is untouched
    assert item.sms_status == QueueItem.SmsStatus.SENT
    assert len(outbound(item.phone)) == 1
    counters_match_recount(campaign)
    assert Campaign.objects.get(pk=campaign.pk).sms_sent == 1
    assert Campaign.objects.get(pk=campaign.pk).voicemail == 1  # the call's counter, moved once by the call


def test_both_items_after_hours_text_at_the_next_allowed_time(heymarket_sandbox):
    campaign = running_campaign()
    late = dt.datetime.combine(CAMPAIGN_DATE, dt.time(20, 59, 30), tzinfo=dt.timezone.utc).astimezone(NY)  # 16:59 NY
    allowed = _both_item_after_voicemail(campaign, now=late, timezones="America/New_York")
    evening = dt.datetime.combine(CAMPAIGN_DATE, dt.time(21, 0), tzinfo=NY)
    blocked = _both_item_after_voicemail(campaign, now=evening)
    sms.sms_send_due(now=late)
    sms.sms_send_due(now=evening)
    assert len(outbound(allowed.phone)) == 1
    assert outbound(blocked.phone) == []
    blocked.refresh_from_db()
    next_morning = dt.datetime.combine(CAMPAIGN_DATE + dt.timedelta(days=1), dt.time(8), tzinfo=NY)
    assert blocked.sms_due_at == next_morning and blocked.sms_status == QueueItem.SmsStatus.SCHEDULED
    sms.sms_send_due(now=next_morning)
    assert len(outbound(blocked.phone)) == 1
    counters_match_recount(campaign)


def test_the_inbox_switches_at_each_segments_suspension_day(heymarket_sandbox):
    campaign = running_campaign()
    expected: dict[str, str] = {}
    for segment in Segment.objects.all():
        before = sms_step(segment, before_day=segment.suspension_day)  # the last billing-phase text
        billing = due_item(campaign, segment=segment.name, day=before.day)
        suspension = _both_item_after_voicemail(campaign, now=MORNING, segment=segment.name, day=segment.suspension_day)
        expected[billing.phone] = segment.billing_inbox_id
        expected[suspension.phone] = segment.resurrection_inbox_id
        assert billing.team == "billing" and suspension.team == "resurrection"
    assert Segment.objects.count() == 5

    sms.sms_send_due(now=MORNING)

    for phone, inbox in expected.items():
        [recorded] = outbound(phone)
        assert recorded.inbox_id == inbox, phone
    assert len(set(expected.values())) == 6  # RED shares its inboxes across its two segments, Reso too
    counters_match_recount(campaign)


def test_counters_equal_the_recount_across_kinds_and_outcomes(heymarket_sandbox):
    campaign = running_campaign()
    sent = [due_item(campaign) for _ in range(3)]
    follow_ups = [_both_item_after_voicemail(campaign, now=MORNING) for _ in range(2)]
    rejected = due_item(campaign)
    heymarket.set_contact_status(rejected.phone, opted_out=True)
    rejected_follow_up = _both_item_after_voicemail(campaign, now=MORNING)
    heymarket.set_contact_status(rejected_follow_up.phone, opted_out=True)

    sms.sms_send_due(now=MORNING)
    sms.sms_send_due(now=MORNING + dt.timedelta(minutes=1))

    campaign.refresh_from_db()
    assert campaign.sms_sent == len(sent) + len(follow_ups) == 5
    assert campaign.sms_failed == 2
    counters_match_recount(campaign)


def test_the_minute_schedule_is_installed_once(heymarket_sandbox):
    schedules.schedules_install()
    schedules.schedules_install()
    schedule = Schedule.objects.get(name="sms-send-due")
    assert Schedule.objects.filter(func=schedule.func).count() == 1
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 1 and schedule.repeats == -1
    module, name = schedule.func.rsplit(".", 1)
    assert module == "campaigns.tasks" and callable(getattr(tasks, name))


def _zone_in_daytime(now: dt.datetime) -> str:
    """A fixed-offset zone where it is mid-day right now, so the real clock is inside the window."""
    for offset in range(-12, 13):
        zone = f"Etc/GMT{'+' if offset >= 0 else '-'}{abs(offset)}"  # POSIX sign: GMT+5 is UTC-5
        if dt.time(10) <= now.astimezone(ZoneInfo(zone)).time() < dt.time(19):
            return zone
    raise AssertionError("no zone in daytime")


def test_a_voicemail_reported_by_retell_sends_the_follow_up_text(heymarket_sandbox, client, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)  # the webhook's processing task runs in-process
    today = timezone.localdate()
    campaign = running_campaign(date=today)
    zone = _zone_in_daytime(timezone.now())
    item = queue_item(campaign, segment="RED Initial", day=60, action_type="BOTH", timezones=zone)
    S = QueueItem.Status
    for source, target in ((S.QUEUED, S.RELEASING), (S.RELEASING, S.DIALING)):
        assert queue_item_transition(item_id=item.pk, from_statuses=[source], to_status=target)
    attempt = CallAttempt.objects.create(
        campaign=campaign, queue_item=item, call_id="call_sms_follow_up", from_number="+12125550100", to_number=item.phone,
        status=CallAttempt.Status.REGISTERED,
    )

    response = post_signed(client, ended(attempt, disconnection_reason="voicemail_reached"))
    assert response.status_code in (200, 204)
    item.refresh_from_db()
    assert item.status == S.VOICEMAIL and item.sms_status == QueueItem.SmsStatus.SCHEDULED

    report = sms.sms_send_due(now=timezone.now())

    assert report.sent == 1
    [recorded] = outbound(item.phone)
    assert recorded.inbox_id == item.inbox_id == Segment.objects.get(name="RED Initial").resurrection_inbox_id
    assert recorded.local_id == f"qi-{today:%Y%m%d}-{item.client_id}-follow_up"
    counters_match_recount(campaign)
