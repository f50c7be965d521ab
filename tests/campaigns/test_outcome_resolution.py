"""Outcome resolution from Retell events: precedence, refinement, order, duplicates, counters, ledger."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import F

from cadences.models import ActionType
from campaigns.models import Alert, CallAttempt, Campaign, ContactLedgerEntry, QueueItem, Suppression
from campaigns.calls.outcomes import Resolution, call_outcome_resolve
from campaigns.transitions import campaign_recount
from tests.campaigns.retell_factories import (  # noqa: F401 - retell_tasks_inline is a fixture
    retell_tasks_inline,
    analyzed,
    call_analysis,
    call_object,
    ended,
    event,
    make_dialing_attempt,
    post_signed,
)

pytestmark = pytest.mark.usefixtures("retell_tasks_inline")

O = CallAttempt.Outcome


def state(attempt: CallAttempt) -> dict[str, Any]:
    """Everything a Retell event can change, for comparing two delivery orders."""
    attempt.refresh_from_db()
    item = QueueItem.objects.get(pk=attempt.queue_item_id)
    campaign = Campaign.objects.get(pk=attempt.campaign_id)
    return {
        "attempt": (attempt.status, attempt.outcome, attempt.disconnection_reason, attempt.in_voicemail, attempt.analyzed),
        "item": (item.status, item.last_outcome, item.sms_status),
        "counters": {name: getattr(campaign, name) for name in campaign_recount(campaign=campaign)},
        "ledger": sorted(
            ContactLedgerEntry.objects.filter(reference=attempt.call_id).values_list("kind", "outcome")
        ),
    }


def release_step_recorded(attempt: CallAttempt) -> None:
    """What the release step records when Retell accepts a create-call: a placed call, an attempt."""
    Campaign.objects.filter(pk=attempt.campaign_id).update(calls_placed=F("calls_placed") + 1)
    ContactLedgerEntry.objects.create(
        client_id=attempt.queue_item.client_id,
        phone=attempt.to_number,
        kind=ContactLedgerEntry.Kind.CALL_ATTEMPT,
        reference=attempt.call_id,
        occurred_at=attempt.created_at,
    )


def assert_counters_match_recount(attempt: CallAttempt) -> None:
    campaign = Campaign.objects.get(pk=attempt.campaign_id)
    recount = campaign_recount(campaign=campaign)
    assert {name: getattr(campaign, name) for name in recount} == recount


# --- The precedence itself (pure) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call_status", "reason", "in_voicemail", "transferred", "expected"),
    [
        ("ended", "user_hangup", None, False, O.ANSWERED),
        ("ended", "agent_hangup", False, False, O.ANSWERED),
        ("ended", "inactivity", None, False, O.ANSWERED),
        ("ended", "max_duration_reached", None, False, O.ANSWERED),
        ("ended", "user_requested_dnc", None, False, O.ANSWERED),
        ("ended", "call_transfer", None, False, O.TRANSFERRED),
        ("ended", "transfer_bridged", None, False, O.TRANSFERRED),
        ("ended", "call_take_over", None, False, O.TRANSFERRED),
        ("ended", "user_hangup", None, True, O.TRANSFERRED),
        # A transfer outranks the voicemail flag.
        ("ended", "call_transfer", True, False, O.TRANSFERRED),
        ("ended", "voicemail_reached", None, False, O.VOICEMAIL),
        ("ended", "user_hangup", True, False, O.VOICEMAIL),
        ("ended", "agent_hangup", True, False, O.VOICEMAIL),
        ("not_connected", "dial_no_answer", None, False, O.NO_ANSWER),
        ("not_connected", "dial_busy", None, False, O.NO_ANSWER),
        ("not_connected", "user_declined", None, False, O.NO_ANSWER),
        ("ended", "ivr_reached", None, False, O.NO_ANSWER),
        ("not_connected", "invalid_destination", None, False, O.FAILED),
        ("not_connected", "dial_failed", None, False, O.FAILED),
        ("not_connected", "marked_as_spam", None, False, O.FAILED),
        ("not_connected", "", None, False, O.FAILED),
        ("error", "error_llm_websocket_open", None, False, O.FAILED),
        ("error", "", None, False, O.FAILED),
        ("ended", "error_asr", None, False, O.FAILED),
        ("ongoing", "", None, False, ""),
        ("registered", "", None, False, ""),
    ],
)
def test_precedence(call_status, reason, in_voicemail, transferred, expected):
    resolution = call_outcome_resolve(
        call_status=call_status, disconnection_reason=reason, in_voicemail=in_voicemail, transferred=transferred
    )
    assert resolution == Resolution(expected)


def test_an_unknown_reason_resolves_to_failed_and_is_flagged():
    resolution = call_outcome_resolve(
        call_status="ended", disconnection_reason="quantum_decoherence", in_voicemail=None, transferred=False
    )
    assert resolution == Resolution(O.FAILED, unknown_reason=True)


@pytest.mark.parametrize("reason", ["concurrency_limit_reached", "no_valid_payment"])
def test_calls_retell_refused_to_place_are_not_dialed(reason):
    resolution = call_outcome_resolve(call_status="error", disconnection_reason=reason, in_voicemail=None, transferred=False)
    assert resolution == Resolution("", not_dialed=True)


# --- Every outcome through the webhook --------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("call", "expected", "counter"),
    [
        ({"call_status": "ended", "disconnection_reason": "user_hangup"}, O.ANSWERED, "answered"),
        ({"call_status": "ended", "disconnection_reason": "voicemail_reached"}, O.VOICEMAIL, "voicemail"),
        (
            {"call_status": "ended", "disconnection_reason": "call_transfer", "transfer_destination": "+12125550188"},
            O.TRANSFERRED,
            "transferred",
        ),
        ({"call_status": "not_connected", "disconnection_reason": "dial_no_answer"}, O.NO_ANSWER, "no_answer"),
        ({"call_status": "not_connected", "disconnection_reason": "dial_busy"}, O.NO_ANSWER, "no_answer"),
        ({"call_status": "not_connected", "disconnection_reason": "invalid_destination"}, O.FAILED, "failed"),
        ({"call_status": "error", "disconnection_reason": "error_retell"}, O.FAILED, "failed"),
    ],
    ids=["answered", "voicemail", "transferred", "no-answer", "busy", "invalid-number", "error"],
)
def test_every_outcome_moves_the_item_and_one_counter(client, call, expected, counter):
    attempt = make_dialing_attempt()
    assert post_signed(client, event("call_ended", call_object(attempt, **call))).status_code == 204
    attempt.refresh_from_db()
    item = QueueItem.objects.get(pk=attempt.queue_item_id)
    assert attempt.outcome == expected
    assert item.last_outcome == expected
    # A no-answer may already be back in the queue for its retry; everything else stays final.
    assert item.status == expected or (expected == O.NO_ANSWER and item.status == QueueItem.Status.QUEUED)
    campaign = Campaign.objects.get(pk=attempt.campaign_id)
    assert getattr(campaign, counter) == (1 if item.status == expected else 0)
    assert_counters_match_recount(attempt)


@pytest.mark.django_db
def test_everything_about_the_call_is_stored_on_the_attempt(client):
    attempt = make_dialing_attempt()
    call = call_object(attempt, disconnection_reason="call_transfer", transfer_destination="+12125550188")
    call["call_analysis"] = call_analysis(sentiment="Neutral", summary="Client asked for an agent; transferred.")
    assert post_signed(client, event("call_analyzed", call)).status_code == 204
    attempt.refresh_from_db()
    assert attempt.status == CallAttempt.Status.ENDED
    assert attempt.outcome == O.TRANSFERRED
    assert attempt.disconnection_reason == "call_transfer"
    assert attempt.started_at == dt.datetime.fromtimestamp(call["start_timestamp"] / 1000, tz=dt.timezone.utc)
    assert attempt.ended_at == dt.datetime.fromtimestamp(call["end_timestamp"] / 1000, tz=dt.timezone.utc)
    assert attempt.duration_ms == 95_000
    assert attempt.transcript == call["transcript"]
    assert attempt.recording_url == call["recording_url"]
    assert attempt.summary == "Client asked for an agent; transferred."
    assert attempt.sentiment == "Neutral"
    assert attempt.transfer_destination == "+12125550188"
    # Retell's combined_cost is in cents.
    assert attempt.cost == Decimal("0.1220")
    assert attempt.analyzed is True and attempt.in_voicemail is False


@pytest.mark.django_db
def test_the_ledger_gets_the_attempt_and_a_conversation_when_answered(client):
    attempt = make_dialing_attempt()
    post_signed(client, ended(attempt))
    entries = ContactLedgerEntry.objects.filter(reference=attempt.call_id).order_by("kind")
    assert [(e.kind, e.outcome) for e in entries] == [("call_attempt", "answered"), ("conversation", "answered")]
    assert {e.client_id for e in entries} == {attempt.queue_item.client_id}
    assert {e.phone for e in entries} == {attempt.to_number}
    assert {e.campaign_date for e in entries} == {attempt.campaign.date}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "call",
    [
        {"call_status": "ended", "disconnection_reason": "voicemail_reached"},
        {"call_status": "not_connected", "disconnection_reason": "dial_no_answer"},
        {"call_status": "not_connected", "disconnection_reason": "dial_failed"},
    ],
    ids=["voicemail", "no-answer", "failed"],
)
def test_no_conversation_without_a_person_on_the_line(client, call):
    attempt = make_dialing_attempt()
    post_signed(client, event("call_ended", call_object(attempt, **call)))
    kinds = list(ContactLedgerEntry.objects.filter(reference=attempt.call_id).values_list("kind", flat=True))
    assert kinds == ["call_attempt"]


@pytest.mark.django_db
def test_an_attempt_the_release_step_already_put_in_the_ledger_gets_its_outcome(client):
    attempt = make_dialing_attempt()
    release_step_recorded(attempt)
    post_signed(client, ended(attempt, call_status="not_connected", disconnection_reason="dial_busy"))
    entry = ContactLedgerEntry.objects.get(kind="call_attempt", reference=attempt.call_id)
    assert entry.outcome == "no_answer"


# --- Refinement, order and duplicates ----------------------------------------------------------


@pytest.mark.django_db
def test_call_analyzed_refines_answered_into_voicemail(client):
    attempt = make_dialing_attempt()
    post_signed(client, ended(attempt, disconnection_reason="agent_hangup"))
    assert state(attempt)["item"][0] == "answered"
    assert ContactLedgerEntry.objects.filter(kind="conversation", reference=attempt.call_id).exists()

    post_signed(client, analyzed(attempt, disconnection_reason="agent_hangup", analysis=call_analysis(in_voicemail=True)))
    final = state(attempt)
    assert final["item"][0] == "voicemail"
    assert final["counters"]["answered"] == 0 and final["counters"]["voicemail"] == 1
    # A voicemail is not a conversation: the blackout must not start from it.
    assert final["ledger"] == [("call_attempt", "voicemail")]
    assert_counters_match_recount(attempt)


def _deliver(client, payloads):
    for payload in payloads:
        assert post_signed(client, payload).status_code in (200, 204)


@pytest.mark.django_db
@pytest.mark.parametrize("in_voicemail", [True, False], ids=["voicemail", "answered"])
def test_call_analyzed_before_call_ended_ends_in_the_same_state(client, in_voicemail):
    in_order = make_dialing_attempt()
    reversed_order = make_dialing_attempt()
    analysis = call_analysis(in_voicemail=in_voicemail)

    _deliver(client, [ended(in_order, disconnection_reason="agent_hangup"), analyzed(in_order, analysis=analysis, disconnection_reason="agent_hangup")])
    _deliver(
        client,
        [analyzed(reversed_order, analysis=analysis, disconnection_reason="agent_hangup"), ended(reversed_order, disconnection_reason="agent_hangup")],
    )
    a, b = state(in_order), state(reversed_order)
    assert a["attempt"] == b["attempt"]
    assert a["item"] == b["item"]
    assert sorted(a["ledger"]) == sorted(b["ledger"])
    expected = "voicemail" if in_voicemail else "answered"
    assert a["item"][0] == b["item"][0] == expected
    campaign = Campaign.objects.get(pk=in_order.campaign_id)
    assert getattr(campaign, expected) == 2
    assert_counters_match_recount(in_order)


@pytest.mark.django_db
def test_every_delivery_order_and_duplication_leaves_the_same_state(client):
    reference = make_dialing_attempt(action_type=ActionType.BOTH)
    for payload in (ended(reference), analyzed(reference, analysis=call_analysis(in_voicemail=True))):
        post_signed(client, payload)
    expected = state(reference)
    expected_counters = expected.pop("counters")

    orders = [
        ["ended", "analyzed"],
        ["analyzed", "ended"],
        ["ended", "ended", "analyzed", "analyzed"],
        ["analyzed", "analyzed", "ended", "ended", "analyzed"],
    ]
    for order in orders:
        attempt = make_dialing_attempt(action_type=ActionType.BOTH, campaign=reference.campaign)
        payloads = {"ended": ended(attempt), "analyzed": analyzed(attempt, analysis=call_analysis(in_voicemail=True))}
        _deliver(client, [payloads[name] for name in order])
        got = state(attempt)
        got.pop("counters")
        assert got == expected, order
    campaign = Campaign.objects.get(pk=reference.campaign_id)
    assert campaign.voicemail == 1 + len(orders)
    assert campaign.answered == 0
    assert expected_counters["voicemail"] == 1
    assert_counters_match_recount(reference)


@pytest.mark.django_db
def test_a_bridged_transfer_is_not_undone_by_the_later_call_ended(client):
    attempt = make_dialing_attempt()
    bridged = event(
        "transfer_bridged",
        call_object(attempt, call_status="ongoing", disconnection_reason=None, transfer_destination="+12125550188"),
        event_timestamp=1749564030000,
    )
    _deliver(client, [bridged, ended(attempt, disconnection_reason="user_hangup")])
    final = state(attempt)
    assert final["item"][0] == "transferred"
    assert final["counters"]["transferred"] == 1 and final["counters"]["answered"] == 0
    assert ("conversation", "transferred") in final["ledger"]


@pytest.mark.django_db
def test_call_started_after_call_ended_does_not_move_the_attempt_back(client):
    attempt = make_dialing_attempt()
    started = event("call_started", call_object(attempt, call_status="ongoing", disconnection_reason=None))
    _deliver(client, [ended(attempt), started])
    attempt.refresh_from_db()
    assert attempt.status == CallAttempt.Status.ENDED
    assert attempt.outcome == O.ANSWERED


@pytest.mark.django_db
def test_call_started_marks_the_attempt_ongoing_without_an_outcome(client):
    attempt = make_dialing_attempt()
    post_signed(client, event("call_started", call_object(attempt, call_status="ongoing", disconnection_reason=None)))
    attempt.refresh_from_db()
    assert attempt.status == CallAttempt.Status.ONGOING and attempt.outcome == ""
    assert attempt.queue_item.status == QueueItem.Status.DIALING


@pytest.mark.django_db
def test_an_unknown_disconnection_reason_is_failed_with_the_raw_reason_and_a_warning(client, caplog):
    attempt = make_dialing_attempt()
    with caplog.at_level(logging.WARNING, logger="campaigns.calls.outcomes"):
        post_signed(client, ended(attempt, disconnection_reason="carrier_gremlins_v2"))
    attempt.refresh_from_db()
    assert attempt.outcome == O.FAILED
    assert attempt.disconnection_reason == "carrier_gremlins_v2"
    assert attempt.queue_item.status == QueueItem.Status.FAILED
    warnings = [r for r in caplog.records if "unknown retell disconnection reason" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].disconnection_reason == "carrier_gremlins_v2"
    assert_counters_match_recount(attempt)


@pytest.mark.django_db
def test_an_event_arriving_before_the_call_id_is_saved_finds_the_attempt_by_metadata(client):
    attempt = make_dialing_attempt(call_id="")
    CallAttempt.objects.filter(pk=attempt.pk).update(call_id=None)
    attempt.refresh_from_db()
    payload = ended(attempt, call_id="call_from_retell_123")
    assert post_signed(client, payload).status_code == 204
    attempt.refresh_from_db()
    assert attempt.call_id == "call_from_retell_123"
    assert attempt.outcome == O.ANSWERED


@pytest.mark.django_db
def test_a_late_event_about_an_earlier_call_does_not_settle_the_newer_dial(client):
    first = make_dialing_attempt()
    item = first.queue_item
    CallAttempt.objects.filter(pk=first.pk).update(created_at=first.created_at - dt.timedelta(hours=2))
    second = CallAttempt.objects.create(
        campaign=first.campaign, queue_item=item, call_id="call_second_try", to_number=item.phone, attempt_number=2
    )
    post_signed(client, ended(first, call_status="not_connected", disconnection_reason="dial_no_answer"))
    item.refresh_from_db()
    assert item.status == QueueItem.Status.DIALING
    first.refresh_from_db()
    assert first.outcome == O.NO_ANSWER
    post_signed(client, ended(second))
    item.refresh_from_db()
    assert item.status == QueueItem.Status.ANSWERED


# --- Calls Retell refused, and do-not-call ----------------------------------------------------


@pytest.mark.django_db
def test_a_concurrency_refusal_returns_the_item_to_the_queue_without_an_attempt(client):
    attempt = make_dialing_attempt()
    release_step_recorded(attempt)
    payload = ended(attempt, call_status="error", disconnection_reason="concurrency_limit_reached")
    _deliver(client, [payload, payload, analyzed(attempt, call_status="error", disconnection_reason="concurrency_limit_reached")])
    attempt.refresh_from_db()
    item = QueueItem.objects.get(pk=attempt.queue_item_id)
    assert attempt.status == CallAttempt.Status.NOT_DIALED and attempt.outcome == ""
    assert item.status == QueueItem.Status.QUEUED and item.next_attempt_at is not None
    assert item.call_attempts == 0
    # Nobody's phone rang: no attempt in the ledger (the 7-in-7 cap), none placed on the campaign.
    assert not ContactLedgerEntry.objects.filter(reference=attempt.call_id).exists()
    assert Campaign.objects.get(pk=attempt.campaign_id).calls_placed == 0
    assert_counters_match_recount(attempt)


@pytest.mark.django_db
def test_no_valid_payment_halts_the_campaign_and_tells_the_supervisor(client):
    attempt = make_dialing_attempt()
    post_signed(client, ended(attempt, call_status="error", disconnection_reason="no_valid_payment"))
    campaign = Campaign.objects.get(pk=attempt.campaign_id)
    assert campaign.status == Campaign.Status.PAUSED
    assert "no_valid_payment" in campaign.halt_reason
    assert Alert.objects.filter(campaign=campaign, level=Alert.Level.ERROR).count() == 1
    # A second refused call does not raise a second alert.
    other = make_dialing_attempt(campaign=campaign)
    post_signed(client, ended(other, call_status="error", disconnection_reason="no_valid_payment"))
    assert Alert.objects.filter(campaign=campaign).count() == 1


@pytest.mark.django_db
def test_user_requested_dnc_is_answered_plus_a_do_not_call_suppression(client):
    attempt = make_dialing_attempt()
    _deliver(client, [ended(attempt, disconnection_reason="user_requested_dnc")] * 2)
    attempt.refresh_from_db()
    assert attempt.outcome == O.ANSWERED
    suppression = Suppression.objects.get()
    assert (suppression.reason, suppression.channel) == ("do_not_call", "call")
    assert suppression.client_id == attempt.queue_item.client_id and suppression.phone == attempt.to_number
    assert suppression.source == f"retell:{attempt.call_id}"


# --- BOTH items: the follow-up SMS --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("call", "sms_status"),
    [
        ({"call_status": "ended", "disconnection_reason": "voicemail_reached"}, "scheduled"),
        ({"call_status": "not_connected", "disconnection_reason": "dial_no_answer"}, "scheduled"),
        ({"call_status": "ended", "disconnection_reason": "user_hangup"}, "not_needed"),
        ({"call_status": "ended", "disconnection_reason": "call_transfer"}, "not_needed"),
    ],
    ids=["voicemail", "no-answer", "answered", "transferred"],
)
def test_both_items_schedule_their_sms_after_voicemail_or_no_answer(client, call, sms_status):
    attempt = make_dialing_attempt(action_type=ActionType.BOTH)
    before = dt.datetime.now(dt.timezone.utc)
    post_signed(client, event("call_ended", call_object(attempt, **call)))
    item = QueueItem.objects.get(pk=attempt.queue_item_id)
    assert item.sms_status == sms_status
    if sms_status == "scheduled":
        assert item.sms_due_at is not None and item.sms_due_at >= before - dt.timedelta(seconds=1)
    else:
        assert item.sms_due_at is None


@pytest.mark.django_db
def test_a_both_item_refined_to_voicemail_gets_its_sms(client):
    attempt = make_dialing_attempt(action_type=ActionType.BOTH)
    post_signed(client, ended(attempt, disconnection_reason="agent_hangup"))
    assert QueueItem.objects.get(pk=attempt.queue_item_id).sms_status == "not_needed"
    post_signed(client, analyzed(attempt, disconnection_reason="agent_hangup", analysis=call_analysis(in_voicemail=True)))
    assert QueueItem.objects.get(pk=attempt.queue_item_id).sms_status == "scheduled"


@pytest.mark.django_db
def test_an_sms_already_being_sent_is_not_touched(client):
    attempt = make_dialing_attempt(action_type=ActionType.BOTH, sms_status=QueueItem.SmsStatus.SENT)
    post_signed(client, ended(attempt, disconnection_reason="voicemail_reached"))
    assert QueueItem.objects.get(pk=attempt.queue_item_id).sms_status == "sent"


@pytest.mark.django_db
def test_call_only_items_get_no_sms(client):
    attempt = make_dialing_attempt(action_type=ActionType.CALL)
    post_signed(client, ended(attempt, disconnection_reason="voicemail_reached"))
    item = QueueItem.objects.get(pk=attempt.queue_item_id)
    assert (item.sms_status, item.sms_due_at) == ("none", None)
