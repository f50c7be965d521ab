"""A callback the client asked for is dialed by the release loop at its time, inside the window,
even inside the post-conversation blackout (the request is the consent); the analysis of the same
call books the same callback, and a finished queue item is never given a retry time."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.calls import release
from campaigns.compliance.ledger import ledger_record
from campaigns.conversations import results
from campaigns.models import Callback, CallAttempt, ContactLedgerEntry, GateDecision, QueueItem, ReleaseBatch, Suppression
from campaigns.payments import record
from integrations.sandbox.models import SimulatedCall
from tests.campaigns.release_factories import make_call_step, make_campaign, make_item, make_segment, sandbox  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

ASKED = dt.datetime(2025, 6, 10, 15, 0, tzinfo=dt.timezone.utc)  # 11:00 in New York
CALL_ID = "call_asked_for_callback"


def answered_item():
    campaign = make_campaign(date=ASKED.date())
    item = make_item(campaign, make_call_step(make_segment()), phone="+12125550177", status=QueueItem.Status.ANSWERED)
    # The answered call: a conversation on the ledger, which starts the 7-day blackout.
    ledger_record(
        client_id=item.client_id, phone=item.phone, kind=ContactLedgerEntry.Kind.CONVERSATION, reference=CALL_ID,
        occurred_at=ASKED, campaign_date=campaign.date, outcome="answered",
    )  # fmt: skip
    return campaign, item


def analysed(item, callback_time: str) -> None:
    context = results.context_for_client(client_id=item.client_id, phone=item.phone, now=ASKED)
    analysis = {"call_summary": "Call me later.", "custom_analysis_data": {"callback_requested": True, "callback_time": callback_time}}
    results.conversation_results_apply(context=context, call_id=CALL_ID, analysis=analysis, disconnection_reason="", now=ASKED)


def test_a_requested_callback_is_booked_and_the_finished_item_left_alone():
    _, item = answered_item()
    analysed(item, "2025-06-10T14:00:00")
    callback = Callback.objects.get()
    assert callback.due_at == dt.datetime(2025, 6, 10, 18, 0, tzinfo=dt.timezone.utc)
    assert callback.consent_call_id == CALL_ID and callback.status == Callback.Status.SCHEDULED
    item.refresh_from_db()
    assert item.next_attempt_at is None  # the bug: a retry time on a final item nothing picked up
    analysed(item, "2025-06-10T14:00:00")  # the analysis again, or after the live tool booked it
    assert Callback.objects.count() == 1


def test_the_release_loop_dials_a_due_callback_inside_the_blackout(sandbox):  # noqa: F811
    campaign, item = answered_item()
    analysed(item, "2025-06-10T14:00:00")
    state = release.LoopState(pacer=release.Pacer(None))
    # Not yet due: nothing is dialed.
    assert release.callbacks_release(campaign=campaign, now_fn=lambda: ASKED + dt.timedelta(hours=2), state=state, dialer=release.DialerSettings.load()) == 0
    due = dt.datetime(2025, 6, 10, 18, 1, tzinfo=dt.timezone.utc)
    release.release_pass(campaign=campaign, now_fn=lambda: due, state=state)
    callback = Callback.objects.get()
    assert callback.status == Callback.Status.PLACED and callback.dialed_at == due
    attempt = CallAttempt.objects.get(kind=CallAttempt.Kind.CALLBACK)
    assert attempt.to_number == "+12125550177" and attempt.call_id and callback.attempt_id == attempt.pk
    (simulated,) = SimulatedCall.objects.filter(to_number="+12125550177")
    assert simulated.metadata["callback_id"] == callback.pk and simulated.metadata["client_id"] == item.client_id
    assert simulated.metadata["consent_call_id"] == CALL_ID
    assert simulated.dynamic_variables["call_reason"] == "callback"
    assert simulated.dynamic_variables["amount_due"] == ""  # verify before disclosing the balance
    assert ContactLedgerEntry.objects.filter(kind=ContactLedgerEntry.Kind.CALL_ATTEMPT, reference=attempt.call_id).exists()
    # Dialed once.
    release.release_pass(campaign=campaign, now_fn=lambda: due + dt.timedelta(minutes=1), state=state)
    assert SimulatedCall.objects.filter(to_number="+12125550177").count() == 1


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


DUE = dt.datetime(2025, 6, 10, 18, 1, tzinfo=dt.timezone.utc)  # 14:01 in New York


def test_a_due_callback_waits_for_a_free_agent_of_its_ring_group(sandbox):  # noqa: F811
    campaign, item = answered_item()
    campaign.poll_interval_seconds = 5
    campaign.save()
    analysed(item, "2025-06-10T14:00:00")
    # Its ring group (the billing team's, as the phase it was booked in) has nobody free; another has.
    sandbox.dialflow_overrides = {"billing": [0], "resurrection": [5]}
    sandbox.save()
    monotonic = Monotonic()
    state = release.LoopState(pacer=release.Pacer(None))
    release.release_pass(campaign=campaign, now_fn=lambda: DUE, state=state, monotonic=monotonic)
    assert Callback.objects.get().status == Callback.Status.SCHEDULED and not SimulatedCall.objects.exists()
    # An agent is free now; the group is asked again only after the poll interval, like a batch's.
    sandbox.dialflow_overrides = {"billing": [1]}
    sandbox.save()
    monotonic.t += 4.9
    release.release_pass(campaign=campaign, now_fn=lambda: DUE + dt.timedelta(seconds=5), state=state, monotonic=monotonic)
    assert Callback.objects.get().status == Callback.Status.SCHEDULED
    monotonic.t += 0.1
    later = DUE + dt.timedelta(minutes=3)
    release.release_pass(campaign=campaign, now_fn=lambda: later, state=state, monotonic=monotonic)
    callback = Callback.objects.get()
    # Still inside the blackout the answered call started, and inside the client's window.
    assert callback.status == Callback.Status.PLACED and callback.dialed_at == later
    assert SimulatedCall.objects.filter(to_number=item.phone).count() == 1


def test_a_callback_takes_the_free_agent_before_the_next_batch(sandbox):  # noqa: F811
    campaign, item = answered_item()
    analysed(item, "2025-06-10T14:00:00")
    waiting = make_item(campaign, make_call_step(make_segment()), phone="+12125550178", ring_group="billing")
    sandbox.dialflow_overrides = {"billing": [1]}
    sandbox.save()
    state = release.LoopState(pacer=release.Pacer(None))
    release.release_pass(campaign=campaign, now_fn=lambda: DUE, state=state, monotonic=Monotonic())
    assert Callback.objects.get().status == Callback.Status.PLACED
    waiting.refresh_from_db()
    assert waiting.status == QueueItem.Status.QUEUED and not ReleaseBatch.objects.exists()
    assert [c.to_number for c in SimulatedCall.objects.all()] == [item.phone]


def test_a_suppressed_client_is_not_called_back(sandbox):  # noqa: F811
    campaign, item = answered_item()
    analysed(item, "2025-06-10T14:00:00")
    Suppression.objects.create(client_id=item.client_id, channel=Suppression.Channel.CALL, reason=Suppression.Reason.DO_NOT_CALL, source="test")
    state = release.LoopState(pacer=release.Pacer(None))
    release.release_pass(campaign=campaign, now_fn=lambda: dt.datetime(2025, 6, 10, 18, 1, tzinfo=dt.timezone.utc), state=state)
    callback = Callback.objects.get()
    assert callback.status == Callback.Status.MISSED and "do not call" in callback.detail.lower()
    assert not SimulatedCall.objects.exists()


def test_a_callback_asked_for_at_night_is_moved_to_the_nearest_allowed_time():
    _, item = answered_item()
    analysed(item, "2025-06-10T22:30:00")
    assert Callback.objects.get().due_at == dt.datetime(2025, 6, 11, 0, 45, tzinfo=dt.timezone.utc)  # 20:45 New York


def test_a_client_who_paid_after_booking_is_not_called_back(sandbox):  # noqa: F811
    campaign, item = answered_item()
    analysed(item, "2025-06-10T14:00:00")
    record.payment_record(
        client_id=item.client_id, amount="80.00", reference="pi_after_booking", paid_at=ASKED + dt.timedelta(minutes=30),
        source="warehouse", now=ASKED + dt.timedelta(minutes=30),
    )  # fmt: skip
    state = release.LoopState(pacer=release.Pacer(None))
    release.release_pass(campaign=campaign, now_fn=lambda: dt.datetime(2025, 6, 10, 18, 1, tzinfo=dt.timezone.utc), state=state)
    callback = Callback.objects.get()
    assert callback.status == Callback.Status.MISSED and "payment of $80.00" in callback.detail
    assert not SimulatedCall.objects.exists()


def test_a_callback_the_pacing_carries_past_the_window_is_not_dialed(sandbox):  # noqa: F811
    # Cleared by the gate at 20:59:50 in New York, dialed at 21:00:10: too late, so not dialed
    # (and the window does not open again today), as for every other call.
    campaign, item = answered_item()
    analysed(item, "2025-06-10T20:45:00")
    gate_time = dt.datetime(2025, 6, 11, 0, 59, 50, tzinfo=dt.timezone.utc)
    times = iter([gate_time, gate_time + dt.timedelta(seconds=20)])
    placed = release.callbacks_release(
        campaign=campaign, now_fn=lambda: next(times, gate_time + dt.timedelta(seconds=30)),
        state=release.LoopState(pacer=release.Pacer(None)), dialer=release.DialerSettings.load(),
    )  # fmt: skip
    assert placed == 0 and not SimulatedCall.objects.exists()
    callback = Callback.objects.get()
    assert callback.status == Callback.Status.MISSED and callback.detail
    assert not CallAttempt.objects.filter(kind=CallAttempt.Kind.CALLBACK).exists()
    assert GateDecision.objects.filter(client_id=item.client_id, rule="outside_local_window").exists()
