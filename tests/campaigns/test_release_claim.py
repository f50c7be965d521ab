"""Claiming a batch: what is due, what the gate skips or holds, and what becomes a call attempt."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cadences.models import ActionType
from campaigns.models import CallAttempt, Campaign, ContactLedgerEntry, GateDecision, QueueItem, ReleaseBatch, Suppression
from campaigns.compliance.gate import Rule
from campaigns.compliance.ledger import ledger_record, suppression_add
from campaigns.calls.release import batch_claim
from campaigns.transitions import campaign_recount

from .release_factories import make_call_step, make_campaign, make_item, make_segment, reload

pytestmark = pytest.mark.django_db

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2025, 6, 10, 12, 0, tzinfo=NY)
S = QueueItem.Status


@pytest.fixture
def step():
    return make_call_step(make_segment())


@pytest.fixture
def campaign():
    return make_campaign(date=NOW.date(), batch_size=5)


def claim(campaign, limit=5, ring_group="billing", now=NOW):
    return batch_claim(campaign=campaign, ring_group=ring_group, limit=limit, available_agents=3, now=now)


def test_claims_up_to_the_limit_and_creates_one_attempt_each(campaign, step, settings):
    settings.RETELL_FROM_NUMBERS = ["+13125550100", "+12125550100"]
    items = [make_item(campaign, step) for _ in range(7)]
    result = claim(campaign, limit=5)
    assert len(result.attempts) == 5
    batch = ReleaseBatch.objects.get()
    assert (batch.ring_group, batch.size, batch.available_agents, batch.released_at) == ("billing", 5, 3, NOW)
    claimed = [i for i in reload(items) if i.status == S.RELEASING]
    assert len(claimed) == 5
    attempts = CallAttempt.objects.filter(batch=batch)
    assert sorted(a.queue_item_id for a in attempts) == sorted(i.pk for i in claimed)
    assert all(a.status == CallAttempt.Status.CREATED and a.call_id is None for a in attempts)
    assert all(a.to_number == a.queue_item.phone and a.attempt_number == 1 for a in attempts)
    assert {a.from_number for a in attempts} == {"+12125550100"}  # the clients' 212 area code
    assert sum(i.status == S.QUEUED for i in reload(items)) == 2


def test_a_second_claim_never_takes_a_claimed_item(campaign, step):
    for _ in range(6):
        make_item(campaign, step)
    first = claim(campaign, limit=4)
    second = claim(campaign, limit=4)
    assert len(first.attempts) == 4 and len(second.attempts) == 2
    assert not {a.queue_item_id for a in first.attempts} & {a.queue_item_id for a in second.attempts}
    assert claim(campaign).batch is None


def test_only_due_call_items_of_the_ring_group(campaign, step):
    sms_step = make_call_step(step.segment, day=21, action_type=ActionType.BOTH)
    call = make_item(campaign, step)
    both = make_item(campaign, sms_step)
    other_group = make_item(campaign, step, ring_group="resurrection")
    later = make_item(campaign, step, next_attempt_at=NOW + dt.timedelta(minutes=1))
    due = make_item(campaign, step, next_attempt_at=NOW - dt.timedelta(minutes=1))
    dialing = make_item(campaign, step, status=S.DIALING)
    sms_only = make_item(campaign, step, action_type=ActionType.SMS)
    result = claim(campaign, limit=10)
    assert {a.queue_item_id for a in result.attempts} == {call.pk, both.pk, due.pk}
    assert {i.pk: i.status for i in reload([other_group, later, dialing, sms_only])} == {
        other_group.pk: S.QUEUED,
        later.pk: S.QUEUED,
        dialing.pk: S.DIALING,
        sms_only.pk: S.QUEUED,
    }


def test_gate_blocks_become_skipped_with_the_rule_and_a_decision(campaign, step):
    suppressed = make_item(campaign, step)
    capped = make_item(campaign, step)
    fine = make_item(campaign, step)
    suppression_add(reason=Suppression.Reason.DO_NOT_CALL, channel="call", source="test", client_id=suppressed.client_id)
    for n in range(7):
        ledger_record(client_id=capped.client_id, phone=capped.phone, kind=ContactLedgerEntry.Kind.CALL_ATTEMPT, reference=f"c{n}", occurred_at=NOW - dt.timedelta(days=2, minutes=n))
    result = claim(campaign)
    assert [a.queue_item_id for a in result.attempts] == [fine.pk]
    assert result.skipped == 2
    suppressed, capped = reload([suppressed, capped])
    assert (suppressed.status, suppressed.skip_reason) == (S.SKIPPED, Rule.SUPPRESSED)
    assert suppressed.skip_detail["reason"] == "do_not_call"
    assert (capped.status, capped.skip_reason, capped.skip_detail["attempts"]) == (S.SKIPPED, Rule.WEEKLY_CALL_CAP, 7)
    decisions = {d.queue_item_id: d for d in GateDecision.objects.all()}
    assert decisions[suppressed.pk].rule == Rule.SUPPRESSED and decisions[capped.pk].rule == Rule.WEEKLY_CALL_CAP
    assert decisions[capped.pk].campaign_id == campaign.pk and decisions[capped.pk].channel == "call"
    campaign.refresh_from_db()
    assert campaign.skipped == 2
    assert campaign_recount(campaign=campaign)["skipped"] == 2


def test_an_item_whose_window_opens_later_today_is_held_not_skipped(campaign, step):
    la = make_item(campaign, step, timezones="America/Los_Angeles", state="CA")
    result = claim(campaign, now=NOW.replace(hour=9))  # 06:00 in Los Angeles
    assert result.attempts == [] and result.deferred == 1 and result.skipped == 0
    (la,) = reload([la])
    assert la.status == S.QUEUED
    assert la.next_attempt_at == dt.datetime(2025, 6, 10, 8, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    decision = GateDecision.objects.get(queue_item=la)
    assert decision.rule == Rule.OUTSIDE_LOCAL_WINDOW and decision.inputs["next_window_open"].startswith("2025-06-10T15:00")
    # Not due before then; due (and callable) once it opens.
    assert claim(campaign, now=NOW.replace(hour=10, minute=59)).batch is None
    assert len(claim(campaign, now=NOW.replace(hour=11)).attempts) == 1


def test_a_window_that_does_not_open_again_today_skips(campaign, step):
    late = make_item(campaign, step)
    result = claim(campaign, now=NOW.replace(hour=21, minute=5))
    assert result.skipped == 1
    (late,) = reload([late])
    assert late.status == S.SKIPPED and late.skip_reason == Rule.OUTSIDE_LOCAL_WINDOW
    assert late.skip_detail["next_window_open"].startswith("2025-06-11T12:00")


def test_blocked_items_do_not_use_up_the_batch(campaign, step):
    for _ in range(60):
        item = make_item(campaign, step)
        suppression_add(reason=Suppression.Reason.ATTORNEY, channel="all", source="test", client_id=item.client_id)
    good = [make_item(campaign, step) for _ in range(3)]
    result = claim(campaign, limit=3)
    assert sorted(a.queue_item_id for a in result.attempts) == sorted(i.pk for i in good)
    assert result.skipped == 60


def test_a_network_failed_attempt_is_released_again_with_the_same_key(campaign, step):
    item = make_item(campaign, step)
    first = claim(campaign).attempts[0]
    CallAttempt.objects.filter(pk=first.pk).update(status=CallAttempt.Status.NOT_DIALED, error="network: timed out")
    QueueItem.objects.filter(pk=item.pk).update(status=S.QUEUED)
    again = claim(campaign).attempts
    assert [a.pk for a in again] == [first.pk]
    assert CallAttempt.objects.count() == 1
    assert CallAttempt.objects.get().status == CallAttempt.Status.CREATED


def test_a_rate_limited_attempt_gets_a_new_key(campaign, step):
    item = make_item(campaign, step)
    first = claim(campaign).attempts[0]
    CallAttempt.objects.filter(pk=first.pk).update(status=CallAttempt.Status.NOT_DIALED, error="retell: 429")
    QueueItem.objects.filter(pk=item.pk).update(status=S.QUEUED)
    again = claim(campaign).attempts
    assert again[0].pk != first.pk


def test_claiming_moves_no_final_counter(campaign, step):
    for _ in range(3):
        make_item(campaign, step)
    claim(campaign)
    campaign = Campaign.objects.get(pk=campaign.pk)
    recount = campaign_recount(campaign=campaign)
    assert all(getattr(campaign, name) == value for name, value in recount.items())
