"""High-value accounts: a person first. Above the segment's amount Grace offers the senior ring
group at once and never closes the call alone; the rule is on the call and on the timeline."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from campaigns.calls.high_value import HIGH_VALUE_LINE
from campaigns.calls.release import LoopState, Pacer, callback_dynamic_variables, release_pass
from campaigns.dashboard.selectors import client_timeline
from campaigns.models import Account, CallAttempt, Callback, Campaign, FollowUpTask

from .release_factories import FakeClock, make_call_step, make_campaign, make_item, make_segment, sandbox, simulated_calls  # noqa: F401 - fixtures
from .retell_factories import analyzed, call_analysis, post_signed, retell_tasks_inline  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2025, 6, 10, 12, 0, tzinfo=NY)
SENIOR = "+12125550177"


@pytest.fixture
def step():
    segment = make_segment()
    segment.high_value_threshold = Decimal("1000.00")
    segment.senior_transfer_number = SENIOR
    segment.save()
    return make_call_step(segment)


def run_pass(campaign: Campaign) -> bool:
    campaign.refresh_from_db()
    clock = FakeClock()
    state = LoopState(pacer=Pacer(None, monotonic=clock.monotonic, sleep=clock.sleep))
    return release_pass(campaign=campaign, now_fn=lambda: NOW, state=state, monotonic=clock.monotonic)


def test_a_client_at_or_above_the_threshold_is_offered_the_senior_ring_group(sandbox, step):
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step, amount_due=Decimal("1000.00"))
    assert run_pass(campaign)
    (call,) = simulated_calls()
    variables = call.dynamic_variables
    line = HIGH_VALUE_LINE.format(transfer_number=SENIOR)
    assert variables["high_value"] == "true"
    assert variables["transfer_number"] == SENIOR
    assert variables["high_value_instruction"] == line
    assert variables["live_call_prompt"] == f"{line}\n\n{step.live_call_prompt}"
    assert "Never close the call yourself" in line and SENIOR in line
    assert call.metadata["high_value"] is True

    attempt = CallAttempt.objects.get()
    assert attempt.high_value and attempt.senior_transfer_number == SENIOR
    (event_row,) = [e for e in client_timeline(client_id=item.client_id).events if e.kind == "call"]
    assert event_row.title.endswith(f"high-value: offered to a senior person first ({SENIOR})")


def test_below_the_threshold_the_usual_transfer_number_and_prompt(sandbox, step):
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step, amount_due=Decimal("999.99"))
    assert run_pass(campaign)
    (call,) = simulated_calls()
    assert (call.dynamic_variables["high_value"], call.dynamic_variables["high_value_instruction"]) == ("false", "")
    assert call.dynamic_variables["transfer_number"] == item.transfer_number != SENIOR
    assert call.dynamic_variables["live_call_prompt"] == step.live_call_prompt
    assert not CallAttempt.objects.get().high_value
    assert "high-value" not in [e for e in client_timeline(client_id=item.client_id).events if e.kind == "call"][0].title


def test_a_segment_without_a_senior_number_transfers_to_its_usual_number(sandbox, step):
    step.segment.senior_transfer_number = ""
    step.segment.save()
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step, amount_due=Decimal("5000"))
    assert run_pass(campaign)
    (call,) = simulated_calls()
    assert call.dynamic_variables["high_value"] == "true" and call.dynamic_variables["transfer_number"] == item.transfer_number


def test_a_high_value_call_grace_ended_alone_opens_a_task_for_a_senior_person(client, step, retell_tasks_inline):
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step, status="dialing", call_attempts=1, amount_due=Decimal("2500"))
    attempt = CallAttempt.objects.create(
        campaign=campaign, queue_item=item, call_id="call_hv_1", to_number=item.phone, from_number="+12125550100",
        status=CallAttempt.Status.REGISTERED, high_value=True, senior_transfer_number=SENIOR,
    )  # fmt: skip
    payload = analyzed(attempt, analysis=call_analysis())
    assert post_signed(client, payload).status_code == 204
    assert post_signed(client, payload).status_code == 200  # a replay: acknowledged, opens no second task
    task = FollowUpTask.objects.get(kind=FollowUpTask.Kind.HIGH_VALUE_CALL)
    assert task.source_ref == "call_hv_1" and task.client_id == item.client_id and SENIOR in task.detail


def test_a_high_value_call_a_person_took_needs_no_task(client, step, retell_tasks_inline):
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step, status="dialing", call_attempts=1, amount_due=Decimal("2500"))
    attempt = CallAttempt.objects.create(
        campaign=campaign, queue_item=item, call_id="call_hv_2", to_number=item.phone, from_number="+12125550100",
        status=CallAttempt.Status.REGISTERED, high_value=True, senior_transfer_number=SENIOR,
    )  # fmt: skip
    assert post_signed(client, analyzed(attempt, analysis=call_analysis(), disconnection_reason="call_transfer")).status_code == 204
    assert CallAttempt.objects.get(pk=attempt.pk).outcome == CallAttempt.Outcome.TRANSFERRED
    assert not FollowUpTask.objects.filter(kind=FollowUpTask.Kind.HIGH_VALUE_CALL).exists()


INBOUND_URL = "/webhooks/retell/inbound/"


def test_a_high_value_client_calling_in_is_offered_the_senior_ring_group_too(client, step, retell_tasks_inline):
    campaign = make_campaign(date=dt.date.today())
    item = make_item(campaign, step, phone="+13125550142", amount_due=Decimal("1500"))
    body = {"event": "call_inbound", "call_inbound": {"from_number": "+13125550142", "to_number": "+12125550100", "call_id": "call_in_hv"}}
    response = post_signed(client, body, url=INBOUND_URL)
    assert response.status_code == 200
    answer = response.json()["call_inbound"]
    variables = answer["dynamic_variables"]
    assert (variables["high_value"], variables["transfer_number"]) == ("true", SENIOR)
    assert variables["high_value_instruction"] == HIGH_VALUE_LINE.format(transfer_number=SENIOR)
    assert "live_call_prompt" not in variables  # the inbound agent has its own prompt
    assert answer["metadata"]["high_value"] is True
    attempt = CallAttempt.objects.get(call_id="call_in_hv")
    assert attempt.high_value and attempt.senior_transfer_number == SENIOR and attempt.client_id == item.client_id


def test_a_callback_to_a_high_value_client_carries_the_rule(step):
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step, amount_due=Decimal("4000"))
    account = Account.objects.select_related("segment").get(client_id=item.client_id)
    callback = Callback(client_id=item.client_id, phone=item.phone, phase="past_due", due_at=NOW, consent_call_id="c1")
    variables = callback_dynamic_variables(callback=callback, account=account, company_name="Acme")
    assert (variables["high_value"], variables["transfer_number"]) == ("true", SENIOR)
    assert variables["live_call_prompt"].startswith(HIGH_VALUE_LINE.format(transfer_number=SENIOR))
