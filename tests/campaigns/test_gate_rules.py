"""Each call rule of the compliance gate at its edges, against the real database."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from cadences.models import StateCallLimit
from campaigns.models import ContactLedgerEntry, GateDecision, Suppression
from campaigns.compliance.gate import Rule, gate_calls, gate_record, gate_sms
from campaigns.compliance.ledger import ledger_record, suppression_add, suppression_lift

from .release_factories import dialer_settings, make_call_step, make_campaign, make_item, make_segment

pytestmark = pytest.mark.django_db

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
NOW = dt.datetime(2025, 6, 10, 12, 0, tzinfo=NY)


@pytest.fixture
def step():
    return make_call_step(make_segment())


@pytest.fixture
def campaign():
    return make_campaign(date=NOW.date())


def attempts(item, times, kind=ContactLedgerEntry.Kind.CALL_ATTEMPT):
    for n, when in enumerate(times):
        ledger_record(client_id=item.client_id, phone=item.phone, kind=kind, reference=f"{item.client_id}-{kind}-{n}-{when.isoformat()}", occurred_at=when)


def gate_one(campaign, item, now=NOW):
    return gate_calls(campaign=campaign, items=[item], now=now)[item.pk]


# --- 7 attempts in any 7 days ----------------------------------------------------------------


def test_seventh_attempt_in_seven_days_passes_and_eighth_is_blocked(campaign, step):
    item = make_item(campaign, step)
    # Six earlier attempts, spread over the previous six days (none today, so the daily cap is clear).
    attempts(item, [NOW - dt.timedelta(days=d, hours=1) for d in range(1, 7)])
    assert gate_one(campaign, item) is None  # this would be the 7th
    attempts(item, [NOW - dt.timedelta(days=6, hours=20)])
    blocked = gate_one(campaign, item)  # this would be the 8th
    assert blocked.rule == Rule.WEEKLY_CALL_CAP
    assert blocked.inputs["attempts"] == 7 and blocked.inputs["limit"] == 7


def test_the_seven_days_are_a_rolling_window(campaign, step):
    item = make_item(campaign, step)
    attempts(item, [NOW - dt.timedelta(days=d, hours=2) for d in range(1, 7)])
    attempts(item, [NOW - dt.timedelta(days=7)])  # exactly 7×24 h ago: already outside (now − 7 d, now]
    assert gate_one(campaign, item) is None
    attempts(item, [NOW - dt.timedelta(days=7) + dt.timedelta(seconds=1)])
    assert gate_one(campaign, item).rule == Rule.WEEKLY_CALL_CAP


def test_sms_and_other_clients_do_not_count(campaign, step):
    item = make_item(campaign, step)
    other = make_item(campaign, step)
    attempts(item, [NOW - dt.timedelta(days=2, minutes=m) for m in range(10)], kind=ContactLedgerEntry.Kind.SMS)
    attempts(other, [NOW - dt.timedelta(days=2, minutes=m) for m in range(10)])
    result = gate_calls(campaign=campaign, items=[item, other], now=NOW)
    assert result[item.pk] is None
    assert result[other.pk].rule == Rule.WEEKLY_CALL_CAP


# --- Conversation blackout (calendar days in the client's zone) --------------------------------


def test_day_seven_after_a_conversation_is_blocked_and_day_eight_is_not(campaign, step):
    item = make_item(campaign, step)
    conversation_at = dt.datetime(2025, 6, 3, 8, 30, tzinfo=NY)  # day 0
    attempts(item, [conversation_at], kind=ContactLedgerEntry.Kind.CONVERSATION)
    # Day 7 at 20:00 is 7 days 11.5 hours later — still blocked: the rule counts calendar days.
    day7 = dt.datetime(2025, 6, 10, 20, 0, tzinfo=NY)
    blocked = gate_one(campaign, item, now=day7)
    assert blocked.rule == Rule.CONVERSATION_BLACKOUT
    assert blocked.inputs["days_since_local"] == 7
    assert blocked.inputs["first_callable_local_date"] == "2025-06-11"
    # Day 8 at 08:00 is less than 8×24 h later — callable.
    day8_campaign = make_campaign(date=dt.date(2025, 6, 11))
    assert gate_one(day8_campaign, item, now=dt.datetime(2025, 6, 11, 8, 0, tzinfo=NY)) is None


def test_blackout_uses_the_clients_local_date(campaign, step):
    # 23:30 in Los Angeles on the 2nd is already the 3rd in New York: for an LA client the
    # conversation is on the 2nd, so the 10th is day 8 there.
    item = make_item(campaign, step, timezones="America/Los_Angeles", state="CA")
    attempts(item, [dt.datetime(2025, 6, 2, 23, 30, tzinfo=LA)], kind=ContactLedgerEntry.Kind.CONVERSATION)
    assert gate_one(campaign, item, now=dt.datetime(2025, 6, 10, 9, 0, tzinfo=LA)) is None
    ny_item = make_item(campaign, step)
    attempts(ny_item, [dt.datetime(2025, 6, 2, 23, 30, tzinfo=LA)], kind=ContactLedgerEntry.Kind.CONVERSATION)
    assert gate_one(campaign, ny_item, now=dt.datetime(2025, 6, 10, 12, 0, tzinfo=NY)).rule == Rule.CONVERSATION_BLACKOUT


def test_an_inbound_call_starts_the_blackout_too(campaign, step):
    item = make_item(campaign, step)
    attempts(item, [NOW - dt.timedelta(days=3)], kind=ContactLedgerEntry.Kind.INBOUND_CALL)
    blocked = gate_one(campaign, item)
    assert blocked.rule == Rule.CONVERSATION_BLACKOUT
    assert blocked.inputs["last_contact_kind"] == "inbound_call"


def test_a_longer_configured_blackout_is_honoured(campaign, step):
    dialer_settings(conversation_blackout_days=10)
    item = make_item(campaign, step)
    attempts(item, [NOW - dt.timedelta(days=9)], kind=ContactLedgerEntry.Kind.CONVERSATION)
    assert gate_one(campaign, item).rule == Rule.CONVERSATION_BLACKOUT


# --- Contacted inbound today -------------------------------------------------------------------


def test_a_client_who_called_in_today_is_skipped(campaign, step):
    item = make_item(campaign, step)
    attempts(item, [NOW.replace(hour=9, minute=5)], kind=ContactLedgerEntry.Kind.INBOUND_CALL)
    blocked = gate_one(campaign, item)
    assert blocked.rule == Rule.CONTACTED_INBOUND_TODAY
    assert blocked.inputs["inbound_at"].startswith("2025-06-10T13:05")


def test_an_inbound_call_is_matched_by_phone_as_well(campaign, step):
    item = make_item(campaign, step)
    ledger_record(client_id="", phone=item.phone, kind=ContactLedgerEntry.Kind.INBOUND_CALL, reference="in-1", occurred_at=NOW - dt.timedelta(hours=1))
    assert gate_one(campaign, item).rule == Rule.CONTACTED_INBOUND_TODAY


# --- State limits ------------------------------------------------------------------------------


@pytest.fixture
def massachusetts():
    limit, _ = StateCallLimit.objects.get_or_create(state="MA", defaults={"max_calls": 2, "period_days": 7})
    limit.max_calls, limit.period_days = 2, 7
    limit.save()
    return limit


def test_massachusetts_allows_two_calls_in_seven_days(campaign, step, massachusetts):
    ma = make_item(campaign, step, state="MA")
    ny = make_item(campaign, step, state="NY")
    for item in (ma, ny):
        attempts(item, [NOW - dt.timedelta(days=3)])
    result = gate_calls(campaign=campaign, items=[ma, ny], now=NOW)
    assert result[ma.pk] is None and result[ny.pk] is None  # the 2nd call passes everywhere
    for item in (ma, ny):
        attempts(item, [NOW - dt.timedelta(days=5)])
    result = gate_calls(campaign=campaign, items=[ma, ny], now=NOW)
    assert result[ma.pk].rule == Rule.STATE_CALL_CAP
    assert result[ma.pk].inputs == {
        "state": "MA",
        "attempts": 2,
        "limit": 2,
        "period_days": 7,
        "since": (NOW - dt.timedelta(days=7)).isoformat(),
        "until": NOW.isoformat(),
    }
    assert result[ny.pk] is None  # the federal 7-in-7 still allows the 3rd


def test_a_state_limit_with_its_own_period(campaign, step):
    StateCallLimit.objects.update_or_create(state="ZZ", defaults={"max_calls": 3, "period_days": 14})
    item = make_item(campaign, step, state="zz")
    attempts(item, [NOW - dt.timedelta(days=d) for d in (2, 9, 13)])
    assert gate_one(campaign, item).rule == Rule.STATE_CALL_CAP
    other = make_item(campaign, step, state="ZZ")
    attempts(other, [NOW - dt.timedelta(days=d) for d in (2, 9, 15)])
    assert gate_one(campaign, other) is None


# --- Suppressions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    [
        Suppression.Reason.DO_NOT_CALL,
        Suppression.Reason.CEASE_COMMUNICATION,
        Suppression.Reason.DISPUTE_HOLD,
        Suppression.Reason.ATTORNEY,
    ],
)
@pytest.mark.parametrize("target", ["client_id", "phone"])
def test_each_call_suppression_blocks_by_client_or_phone(campaign, step, reason, target):
    item = make_item(campaign, step)
    suppression = suppression_add(reason=reason, channel="call", source="test", **{target: getattr(item, target)})
    blocked = gate_one(campaign, item)
    assert blocked.rule == Rule.SUPPRESSED
    assert blocked.inputs["suppression_id"] == suppression.pk
    assert blocked.inputs["reason"] == reason and blocked.inputs["matched_on"] == target


def test_sms_opt_out_and_sms_only_suppressions_do_not_block_calls(campaign, step):
    item = make_item(campaign, step)
    suppression_add(reason=Suppression.Reason.SMS_OPT_OUT, channel="sms", source="test", phone=item.phone)
    suppression_add(reason=Suppression.Reason.DO_NOT_CALL, channel="sms", source="test", client_id=item.client_id)
    assert gate_one(campaign, item) is None


def test_all_channel_suppression_blocks_calls_and_a_lifted_one_does_not(campaign, step):
    item = make_item(campaign, step)
    suppression_add(reason=Suppression.Reason.ATTORNEY, channel="all", source="test", client_id=item.client_id)
    assert gate_one(campaign, item).rule == Rule.SUPPRESSED
    suppression_lift(reason=Suppression.Reason.ATTORNEY, lifted_by="supervisor", client_id=item.client_id)
    assert gate_one(campaign, item) is None


def test_sms_gate_checks_sms_suppressions_and_the_sms_window(campaign, step):
    opted_out = make_item(campaign, step)
    dnc = make_item(campaign, step)
    suppression_add(reason=Suppression.Reason.SMS_OPT_OUT, channel="sms", source="test", phone=opted_out.phone)
    suppression_add(reason=Suppression.Reason.DO_NOT_CALL, channel="call", source="test", client_id=dnc.client_id)
    result = gate_sms(items=[opted_out, dnc], now=NOW, start=dt.time(10), end=dt.time(13))
    assert result[opted_out.pk].rule == Rule.SUPPRESSED
    assert result[dnc.pk] is None
    early = gate_sms(items=[dnc], now=NOW.replace(hour=9, minute=59), start=dt.time(10), end=dt.time(13))
    assert early[dnc.pk].rule == Rule.SMS_WINDOW
    late = gate_sms(items=[dnc], now=NOW.replace(hour=21), start=dt.time(10), end=dt.time(23))
    assert late[dnc.pk].rule == Rule.OUTSIDE_LOCAL_WINDOW


# --- Daily attempts, windows, ordering ---------------------------------------------------------------


def test_daily_attempt_cap_from_the_item_and_from_the_ledger(campaign, step):
    dialer_settings(max_call_attempts_per_day=2)
    by_item = make_item(campaign, step, call_attempts=2)
    by_ledger = make_item(campaign, step)
    attempts(by_ledger, [NOW.replace(hour=8, minute=10), NOW.replace(hour=10)])
    one = make_item(campaign, step, call_attempts=1)
    result = gate_calls(campaign=campaign, items=[by_item, by_ledger, one], now=NOW)
    assert result[by_item.pk].rule == Rule.DAILY_ATTEMPT_CAP
    assert result[by_ledger.pk].rule == Rule.DAILY_ATTEMPT_CAP
    assert result[one.pk] is None


def test_window_is_checked_in_the_items_zones(campaign, step):
    la = make_item(campaign, step, timezones="America/Los_Angeles", state="CA")
    both = make_item(campaign, step, timezones="America/New_York,America/Los_Angeles")
    ny = make_item(campaign, step)
    result = gate_calls(campaign=campaign, items=[la, both, ny], now=NOW.replace(hour=10))  # 07:00 in LA
    assert result[la.pk].rule == Rule.OUTSIDE_LOCAL_WINDOW
    assert result[both.pk].rule == Rule.OUTSIDE_LOCAL_WINDOW
    assert result[ny.pk] is None


def test_campaign_window_narrows_calls(step):
    campaign = make_campaign(date=NOW.date(), calling_window_start=dt.time(13), calling_window_end=dt.time(17))
    item = make_item(campaign, step)
    assert gate_one(campaign, item).rule == Rule.CAMPAIGN_WINDOW
    assert gate_one(campaign, item, now=NOW.replace(hour=13)) is None


def test_a_final_reason_wins_over_the_window(campaign, step):
    item = make_item(campaign, step)
    suppression_add(reason=Suppression.Reason.DO_NOT_CALL, channel="call", source="test", client_id=item.client_id)
    assert gate_one(campaign, item, now=NOW.replace(hour=6)).rule == Rule.SUPPRESSED


# --- Cost and recording ------------------------------------------------------------------------------


def test_gate_query_count_does_not_grow_with_the_batch(campaign, step, massachusetts, django_assert_max_num_queries):
    dialer_settings()
    items = [make_item(campaign, step, state="MA" if n % 3 == 0 else "NY") for n in range(150)]
    for n, item in enumerate(items[:60]):
        attempts(item, [NOW - dt.timedelta(days=1 + n % 5)])
        if n % 3 == 0:
            attempts(item, [NOW - dt.timedelta(days=6)])  # a second one: over MA's 2 in 7
        if n % 7 == 0:
            attempts(item, [NOW - dt.timedelta(days=2)], kind=ContactLedgerEntry.Kind.CONVERSATION)
        if n % 11 == 0:
            suppression_add(reason=Suppression.Reason.DISPUTE_HOLD, channel="call", source="test", client_id=item.client_id)
    # One query per kind of fact the rules read (suppressions, ledger, caps, payments, ...),
    # whatever the batch size.
    with django_assert_max_num_queries(6):
        result = gate_calls(campaign=campaign, items=items, now=NOW)
    assert len(result) == 150
    rules = {b.rule for b in result.values() if b}
    assert {Rule.SUPPRESSED, Rule.CONVERSATION_BLACKOUT, Rule.STATE_CALL_CAP} <= rules
    with django_assert_max_num_queries(6):
        gate_calls(campaign=campaign, items=items[:1], now=NOW)


def test_every_block_is_recorded_with_rule_and_json_inputs(campaign, step, massachusetts):
    items = {
        "suppressed": make_item(campaign, step),
        "blackout": make_item(campaign, step),
        "cap": make_item(campaign, step),
        "state": make_item(campaign, step, state="MA"),
        "window": make_item(campaign, step, timezones="America/Los_Angeles"),
    }
    suppression_add(reason=Suppression.Reason.CEASE_COMMUNICATION, channel="all", source="test", phone=items["suppressed"].phone)
    attempts(items["blackout"], [NOW - dt.timedelta(days=1)], kind=ContactLedgerEntry.Kind.CONVERSATION)
    attempts(items["cap"], [NOW - dt.timedelta(days=1, minutes=m) for m in range(7)])
    attempts(items["state"], [NOW - dt.timedelta(days=1, minutes=m) for m in range(2)])
    now = NOW.replace(hour=10)
    result = gate_calls(campaign=campaign, items=list(items.values()), now=now)
    for item in items.values():
        block = result[item.pk]
        assert block is not None and block.detail
        decision = gate_record(block=block, client_id=item.client_id, channel="call", now=now, campaign=campaign, item=item)
        stored = GateDecision.objects.get(pk=decision.pk)
        assert stored.rule == block.rule and stored.queue_item_id == item.pk and stored.campaign_date == campaign.date
        assert json.loads(json.dumps(stored.inputs)) == block.inputs
    assert sorted(GateDecision.objects.values_list("rule", flat=True)) == sorted(
        [Rule.SUPPRESSED, Rule.CONVERSATION_BLACKOUT, Rule.WEEKLY_CALL_CAP, Rule.STATE_CALL_CAP, Rule.OUTSIDE_LOCAL_WINDOW]
    )
