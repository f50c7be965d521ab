"""Releasing batches against the sandbox Retell and Dialflow over real HTTP: the call itself,
the free-agent threshold, one batch at a time per ring group, the batch timeout, pacing and the
concurrent-call limit."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from campaigns.models import CallAttempt, Campaign, ContactLedgerEntry, GateDecision, QueueItem, ReleaseBatch
from campaigns.calls.release import LoopState, Pacer, release_loop_run, release_pass
from campaigns.transitions import campaign_recount, queue_item_transition
from campaigns.payments.links import payment_link_verify

from .release_factories import (  # noqa: F401 - fixtures
    FakeClock,
    dialer_settings,
    make_call_step,
    make_campaign,
    make_item,
    make_segment,
    reload,
    sandbox,
    simulated_calls,
)

pytestmark = pytest.mark.django_db(transaction=True)

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2025, 6, 10, 12, 0, tzinfo=NY)
S = QueueItem.Status


@pytest.fixture
def step():
    return make_call_step(make_segment())


def run_pass(campaign: Campaign, *, now: dt.datetime = NOW, state: LoopState | None = None, clock: FakeClock | None = None) -> bool:
    campaign.refresh_from_db()
    clock = clock or FakeClock()
    state = state or LoopState(pacer=Pacer(None, monotonic=clock.monotonic, sleep=clock.sleep))
    return release_pass(campaign=campaign, now_fn=lambda: now, state=state, monotonic=clock.monotonic)


def resolve(items, outcome=S.ANSWERED):
    for item in items:
        queue_item_transition(item_id=item.pk, from_statuses=[S.DIALING], to_status=outcome)


def test_a_released_call_carries_everything_grace_needs(sandbox, step, settings):
    settings.RETELL_FROM_NUMBERS = ["+13125550100", "+12125550100", "+14155550100"]
    settings.RETELL_AGENT_ID = "agent_grace_test"
    dialer_settings(company_name="Acme Legal Billing")
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step, client_name="Maria José Ortega", amount_due="1234.5", payment_link="https://pay.example.com/p/x1")
    assert run_pass(campaign)

    attempt = CallAttempt.objects.get()
    (call,) = simulated_calls()
    assert call.idempotency_key == str(attempt.pk)
    assert call.agent_id == "agent_grace_test"
    assert (call.from_number, call.to_number) == ("+12125550100", item.phone)
    assert call.metadata == {"campaign_id": campaign.pk, "queue_item_id": item.pk, "attempt_id": str(attempt.pk), "client_id": item.client_id, "high_value": False}
    # The segment verifies before disclosing the balance (the default): no amount goes to Retell.
    assert call.dynamic_variables == {
        "client_name": "Maria José Ortega",
        "first_name": "Maria",
        "amount_due": "",
        "verify_before_balance": "true",
        "transfer_brief": "Maria José Ortega, 20 days past due (Release Test Segment); identity not verified yet.",
        "days_past_due": "20",
        "live_call_prompt": step.live_call_prompt,
        "voicemail_prompt": step.voicemail_prompt,
        "transfer_number": "+12125550188",
        "payment_link": call.dynamic_variables["payment_link"],  # ours, not the warehouse's: checked below
        "company_name": "Acme Legal Billing",
        "segment": "Release Test Segment",
        "phase": "past_due",
        "high_value": "false",
        "high_value_instruction": "",
    }
    assert all(isinstance(v, str) for v in call.dynamic_variables.values())
    link = call.dynamic_variables["payment_link"]
    assert "/pay/" in link and "pay.example.com" not in link
    assert payment_link_verify(token=link.rstrip("/").rsplit("/", 1)[1], now=timezone.now()) == item.client_id

    assert (attempt.status, attempt.call_id, attempt.from_number) == (CallAttempt.Status.REGISTERED, call.call_id, "+12125550100")
    assert attempt.phase == item.phase == "past_due"  # kept on the call past the flush, for the cost by phase
    item.refresh_from_db()
    assert (item.status, item.call_attempts) == (S.DIALING, 1)
    campaign.refresh_from_db()
    assert campaign.calls_placed == 1
    entry = ContactLedgerEntry.objects.get(kind=ContactLedgerEntry.Kind.CALL_ATTEMPT)
    assert (entry.client_id, entry.reference, entry.campaign_date, entry.occurred_at) == (item.client_id, call.call_id, campaign.date, NOW)


def test_no_batch_below_the_release_threshold_and_polling_waits_the_interval(sandbox, step):
    campaign = make_campaign(date=NOW.date(), release_threshold=3, poll_interval_seconds=5)
    items = [make_item(campaign, step) for _ in range(3)]
    sandbox.dialflow_overrides = {"billing": [2]}
    sandbox.save()
    clock = FakeClock()
    state = LoopState(pacer=Pacer(None))
    assert not run_pass(campaign, state=state, clock=clock)
    assert ReleaseBatch.objects.count() == 0 and all(i.status == S.QUEUED for i in reload(items))

    sandbox.dialflow_overrides = {"billing": [3]}
    sandbox.save()
    clock.t += 4.9  # agents are free now, but the group is not asked again before the poll interval
    assert not run_pass(campaign, state=state, clock=clock)
    clock.t += 0.1
    assert run_pass(campaign, state=state, clock=clock)
    batch = ReleaseBatch.objects.get()
    assert (batch.available_agents, batch.size) == (3, 3)


def test_dialflow_unreachable_counts_as_no_agents(sandbox, step, settings):
    settings.DIALFLOW_URL = "http://127.0.0.1:9"  # nothing listens there
    settings.DIALFLOW_API_KEY = "key"
    campaign = make_campaign(date=NOW.date())
    make_item(campaign, step)
    assert not run_pass(campaign)
    assert CallAttempt.objects.count() == 0


def test_ring_groups_are_gated_separately(sandbox, step):
    campaign = make_campaign(date=NOW.date(), release_threshold=2)
    billing = make_item(campaign, step, ring_group="billing")
    resurrection = make_item(campaign, step, ring_group="resurrection")
    sandbox.dialflow_overrides = {"billing": [1], "resurrection": [4]}
    sandbox.save()
    assert run_pass(campaign)
    assert [b.ring_group for b in ReleaseBatch.objects.all()] == ["resurrection"]
    billing, resurrection = reload([billing, resurrection])
    assert (billing.status, resurrection.status) == (S.QUEUED, S.DIALING)


def test_the_next_batch_waits_until_the_last_one_resolved(sandbox, step):
    campaign = make_campaign(date=NOW.date(), batch_size=2)
    items = [make_item(campaign, step) for _ in range(5)]
    state = LoopState(pacer=Pacer(None))
    assert run_pass(campaign, state=state)
    first = [i for i in reload(items) if i.status == S.DIALING]
    assert len(first) == 2
    assert not run_pass(campaign, state=state, now=NOW + dt.timedelta(seconds=30))  # still dialing
    resolve(first[:1])
    assert not run_pass(campaign, state=state, now=NOW + dt.timedelta(seconds=40))  # one still out
    resolve(first[1:], outcome=S.NO_ANSWER)
    assert run_pass(campaign, state=state, now=NOW + dt.timedelta(seconds=50))
    batches = list(ReleaseBatch.objects.order_by("released_at"))
    assert len(batches) == 2
    assert batches[0].resolved_at == NOW + dt.timedelta(seconds=50) and not batches[0].timed_out
    assert sum(i.status == S.DIALING for i in reload(items)) == 2


def test_the_batch_timeout_releases_the_next_batch(sandbox, step):
    campaign = make_campaign(date=NOW.date(), batch_size=2, batch_timeout_seconds=120)
    for _ in range(4):
        make_item(campaign, step)
    state = LoopState(pacer=Pacer(None))
    assert run_pass(campaign, state=state)
    assert not run_pass(campaign, state=state, now=NOW + dt.timedelta(seconds=119))
    assert run_pass(campaign, state=state, now=NOW + dt.timedelta(seconds=120))
    first, second = ReleaseBatch.objects.order_by("released_at")
    assert first.timed_out and first.resolved_at == NOW + dt.timedelta(seconds=120)
    assert second.resolved_at is None and second.size == 2


def test_calls_are_paced_by_calls_per_second(sandbox, step):
    dialer_settings(calls_per_second=2)
    campaign = make_campaign(date=NOW.date(), batch_size=5)
    for _ in range(5):
        make_item(campaign, step)
    clock = FakeClock()
    outcome = release_loop_run(
        campaign_id=campaign.pk,
        worker_id="pacer-test",
        now_fn=lambda: NOW,
        slice_seconds=1,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        reenqueue=False,
    )
    assert outcome == "continue"
    assert CallAttempt.objects.filter(status=CallAttempt.Status.REGISTERED).count() == 5
    # Five calls 0.5 s apart: four waits of half a second between them (the fake clock only
    # moves when the release code sleeps, so any other sleep would show up here too).
    assert clock.sleeps[:4] == [0.5, 0.5, 0.5, 0.5]


def test_never_above_the_concurrent_call_limit(sandbox, step):
    dialer_settings(max_concurrent_calls=3)
    campaign = make_campaign(date=NOW.date(), batch_size=10)
    items = [make_item(campaign, step) for _ in range(6)]
    state = LoopState(pacer=Pacer(None))
    assert run_pass(campaign, state=state)
    assert CallAttempt.objects.filter(status=CallAttempt.Status.REGISTERED).count() == 3
    # Resolved on our side, but the calls are still live at Retell until their webhooks come.
    resolve([i for i in reload(items) if i.status == S.DIALING])
    state.paused_until = 0
    assert not run_pass(campaign, state=state, now=NOW + dt.timedelta(seconds=5))
    assert CallAttempt.objects.count() == 3
    assert state.paused_until > 0  # a full line waits a poll interval before trying again
    CallAttempt.objects.update(status=CallAttempt.Status.ENDED)  # what the webhooks record
    state.paused_until = 0
    assert run_pass(campaign, state=state, now=NOW + dt.timedelta(seconds=10))
    assert CallAttempt.objects.filter(status=CallAttempt.Status.REGISTERED).count() == 3


def test_counters_equal_a_recount_after_a_release(sandbox, step):
    campaign = make_campaign(date=NOW.date(), batch_size=10)
    for _ in range(4):
        make_item(campaign, step)
    make_item(campaign, step, timezones="Pacific/Honolulu")  # 06:00 there: held, not skipped
    make_item(campaign, step, timezones="Bogus/Zone")  # skipped: unknown zone
    assert run_pass(campaign)
    campaign.refresh_from_db()
    recount = campaign_recount(campaign=campaign)
    assert all(getattr(campaign, name) == value for name, value in recount.items())
    assert (campaign.calls_placed, campaign.skipped) == (4, 1)


def test_a_batch_is_bounded_by_free_agents_and_says_what_sized_it(sandbox, step):
    """Six free agents: a batch of six, not the campaign's ten — and the batch history can say why
    a batch came out smaller than the batch size (free agents, the account's free call slots, or
    fewer touchpoints due)."""
    sandbox.dialflow_pattern = [6]
    sandbox.save()
    dialer_settings(max_concurrent_calls=20)
    campaign = make_campaign(date=NOW.date(), batch_size=10)
    for _ in range(12):
        make_item(campaign, step)
    assert run_pass(campaign)
    (batch,) = ReleaseBatch.objects.all()
    assert (batch.size, batch.sized_by, batch.calls_in_progress) == (6, ReleaseBatch.SizedBy.FREE_AGENTS, 0)

    dialer_settings(max_concurrent_calls=8)  # 6 in progress: two slots left
    ReleaseBatch.objects.update(resolved_at=NOW)
    assert run_pass(campaign, now=NOW + dt.timedelta(seconds=10))
    latest = ReleaseBatch.objects.order_by("-pk").first()
    assert (latest.size, latest.sized_by, latest.calls_in_progress) == (2, ReleaseBatch.SizedBy.CONCURRENCY, 6)


def test_a_segment_without_verification_first_gives_grace_the_amount(sandbox, step):
    step.segment.verify_before_balance = False
    step.segment.save()
    campaign = make_campaign(date=NOW.date())
    make_item(campaign, step, amount_due="1234.5")
    assert run_pass(campaign)
    (call,) = simulated_calls()
    assert (call.dynamic_variables["amount_due"], call.dynamic_variables["verify_before_balance"]) == ("1234.50", "false")


def test_a_held_call_says_until_when_on_the_portals_clock_and_the_clients(sandbox, step, settings):
    settings.TIME_ZONE = "America/New_York"
    campaign = make_campaign(date=NOW.date(), batch_size=10)
    held = make_item(campaign, step, timezones="Pacific/Honolulu")  # 06:00 there at noon in New York
    run_pass(campaign)  # nothing is placed: the one item is held
    decision = GateDecision.objects.get(queue_item=held)
    # Honolulu opens at 08:00 HST, 14:00 in New York (EDT in June).
    assert decision.detail.endswith("Held until Jun 10, 2025 14:00 EDT (08:00 HST in Pacific/Honolulu).")
    assert "UTC" not in decision.detail
    assert decision.inputs["next_window_open"] == "2025-06-10T18:00:00+00:00"  # the machine form stays
