"""The calling window is checked again at the moment of dialing, not only when a batch is claimed:
pacing, a slow vendor or network retries can carry a claimed call past 21:00 local."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from campaigns.models import CallAttempt, ContactLedgerEntry, GateDecision, QueueItem
from campaigns.calls.release import LoopState, Pacer, release_pass

from .release_factories import (  # noqa: F401 - fixtures
    FakeClock,
    make_call_step,
    make_campaign,
    make_item,
    make_segment,
    sandbox,
    simulated_calls,
)

pytestmark = pytest.mark.django_db(transaction=True)

NY = ZoneInfo("America/New_York")
S = QueueItem.Status


def test_a_call_whose_window_closes_between_claim_and_dial_is_not_dialed(sandbox) -> None:
    campaign = make_campaign(date=dt.date(2025, 6, 10))
    step = make_call_step(make_segment())
    first = make_item(campaign, step, timezones="America/New_York", client_id="A-first")
    second = make_item(campaign, step, timezones="America/New_York", client_id="B-second")
    # Both are claimed (and gated) at 20:59:59; pacing at one call a second puts the second
    # dial at 21:00:00, when New York's window has closed.
    current = [dt.datetime(2025, 6, 10, 20, 59, 59, tzinfo=NY)]
    fake = FakeClock()

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        current[0] += dt.timedelta(seconds=seconds)

    state = LoopState(pacer=Pacer(1.0, monotonic=fake.monotonic, sleep=sleep))
    release_pass(campaign=campaign, now_fn=lambda: current[0], state=state, monotonic=fake.monotonic)

    first.refresh_from_db()
    second.refresh_from_db()
    dialed = {call.to_number for call in simulated_calls()}
    assert first.status == S.DIALING and first.phone in dialed
    assert second.status == S.QUEUED, "the second goes back to the queue undialed"
    assert second.phone not in dialed
    assert second.next_attempt_at == dt.datetime(2025, 6, 11, 8, 0, tzinfo=NY), "and waits for the window to open again"
    assert [e.client_id for e in ContactLedgerEntry.objects.all()] == ["A-first"], "no attempt is counted for it"
    assert CallAttempt.objects.get(queue_item=second).status == CallAttempt.Status.NOT_DIALED
    (decision,) = GateDecision.objects.filter(client_id="B-second")
    assert decision.rule == "outside_local_window" and decision.queue_item_id == second.pk


def test_the_ledger_records_the_moment_of_dialing(sandbox) -> None:
    campaign = make_campaign(date=dt.date(2025, 6, 10))
    make_item(campaign, make_call_step(make_segment()), timezones="America/New_York")
    dial_time = dt.datetime(2025, 6, 10, 12, 0, tzinfo=NY)
    fake = FakeClock()
    state = LoopState(pacer=Pacer(None, monotonic=fake.monotonic, sleep=fake.sleep))
    release_pass(campaign=campaign, now_fn=lambda: dial_time, state=state, monotonic=fake.monotonic)
    assert ContactLedgerEntry.objects.get().occurred_at == dial_time
