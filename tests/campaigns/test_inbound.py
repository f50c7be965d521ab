"""POST /webhooks/retell/inbound/: caller matching, Grace's variables, and the dialer kept away today."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from cadences.models import Phase
from campaigns.models import ContactLedgerEntry, FollowUpTask, QueueItem, WebhookEvent
from campaigns.compliance import gate as compliance
from campaigns.calls.inbound import GENERIC_VARIABLES
from campaigns.payments.links import payment_link_verify
from integrations import clock
from tests.campaigns.release_factories import make_call_step, make_item, make_segment
from tests.campaigns.retell_factories import (  # noqa: F401 - retell_tasks_inline is a fixture
    retell_tasks_inline,
    INBOUND_URL,
    call_analysis,
    campaign_today,
    event,
    inbound_call_object,
    post_signed,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("retell_tasks_inline")]

AGENT_NUMBER = "+12125550100"


def inbound(client, from_number: str, *, call_id: str | None = "call_inbound_1"):
    body = {"event": "call_inbound", "call_inbound": {"from_number": from_number, "to_number": AGENT_NUMBER, "agent_id": "agent_inbound"}}
    if call_id is not None:
        body["call_inbound"]["call_id"] = call_id
    return post_signed(client, body, url=INBOUND_URL)


def queued_item(**fields) -> QueueItem:
    return make_item(campaign_today(), make_call_step(make_segment()), **fields)


def test_a_caller_in_todays_queue_gets_their_account_context(client):
    item = queued_item(client_name="Dana Q. Whitaker", phone="+13125550142", days_past_due=20)
    response = inbound(client, "+13125550142")
    assert response.status_code == 200
    answer = response.json()["call_inbound"]
    variables = answer["dynamic_variables"]
    assert variables == {
        "known_caller": "true",
        "client_name": "Dana Q. Whitaker",
        "first_name": "Dana",
        "amount_due": "",  # verified first, then looked up (the segment's default)
        "days_past_due": "20",
        "account_status": "past due",
        "phase": "Past due",
        "last_outcome": "none",
        "transfer_number": item.transfer_number,
        "payment_link": variables["payment_link"],  # our signed link, checked below
        "open_promise": "",
        "recent_history": "No earlier calls or texts on record.",
        "inbound_flow": "payment",
        "verify_before_balance": "true",
        "transfer_brief": "",
        "payment_received": "false",
        "last_payment": "",
        "high_value": "false",
        "high_value_instruction": "",
    }
    token = variables["payment_link"].rstrip("/").rsplit("/", 1)[1]
    assert variables["payment_link"].endswith(f"/pay/{token}/")
    assert payment_link_verify(token=token, now=clock.now()) == item.client_id
    assert all(isinstance(value, str) for value in variables.values())
    assert answer["metadata"]["match"] == "account"
    assert answer["metadata"]["client_id"] == item.client_id


def test_a_matched_caller_enters_the_ledger_and_is_not_called_again_today(client):
    item = queued_item(phone="+13125550143")
    inbound(client, "(312) 555-0143", call_id="call_in_42")
    entry = ContactLedgerEntry.objects.get(kind=ContactLedgerEntry.Kind.INBOUND_CALL)
    assert (entry.client_id, entry.phone, entry.reference) == (item.client_id, "+13125550143", "call_in_42")
    assert entry.campaign_date == timezone.localdate()
    # Not an outbound attempt.
    assert not ContactLedgerEntry.objects.filter(kind=ContactLedgerEntry.Kind.CALL_ATTEMPT).exists()
    # The compliance gate reads the entry: no outbound call to this client for the rest of today.
    item.refresh_from_db()
    block = compliance.gate_calls(campaign=item.campaign, items=[item], now=timezone.now())[item.pk]
    assert block is not None and block.rule == compliance.Rule.CONTACTED_INBOUND_TODAY


def test_a_caller_known_only_from_the_ledger_is_matched(client):
    ContactLedgerEntry.objects.create(
        client_id="C-LEDGER",
        phone="+14155550177",
        kind=ContactLedgerEntry.Kind.CALL_ATTEMPT,
        reference="call_old",
        occurred_at=timezone.now() - dt.timedelta(days=9),
        outcome="voicemail",
    )
    response = inbound(client, "+14155550177", call_id="call_in_ledger")
    answer = response.json()["call_inbound"]
    assert answer["metadata"]["match"] == "ledger"
    assert answer["metadata"]["client_id"] == "C-LEDGER"
    assert answer["dynamic_variables"]["known_caller"] == "true"
    assert answer["dynamic_variables"]["last_outcome"] == "voicemail"
    assert ContactLedgerEntry.objects.filter(kind="inbound_call", client_id="C-LEDGER", reference="call_in_ledger").count() == 1


def test_an_unknown_caller_gets_the_generic_variables_and_no_ledger_entry(client):
    queued_item(phone="+13125550144")
    response = inbound(client, "+16175550199")
    answer = response.json()["call_inbound"]
    assert answer["dynamic_variables"] == GENERIC_VARIABLES
    assert answer["metadata"]["match"] == "none"
    assert not ContactLedgerEntry.objects.exists()


def test_an_unparseable_caller_number_is_an_unknown_caller(client):
    response = inbound(client, "anonymous")
    assert response.status_code == 200
    assert response.json()["call_inbound"]["dynamic_variables"] == GENERIC_VARIABLES


def test_a_number_shared_by_two_clients_discloses_nothing_and_asks_a_person(client):
    queued_item(phone="+13125550145", client_name="First Person")
    queued_item(phone="+13125550145", client_name="Second Person")
    response = inbound(client, "+13125550145", call_id="call_shared")
    answer = response.json()["call_inbound"]
    assert answer["dynamic_variables"] == GENERIC_VARIABLES
    assert answer["metadata"]["match"] == "ambiguous"
    task = FollowUpTask.objects.get()
    assert task.kind == FollowUpTask.Kind.LOW_CONFIDENCE_MATCH and task.source_ref == "call_shared"
    assert not ContactLedgerEntry.objects.exists()


def test_a_repeated_inbound_request_answers_again_and_records_once(client):
    queued_item(phone="+13125550146")
    first = inbound(client, "+13125550146", call_id="call_same")
    second = inbound(client, "+13125550146", call_id="call_same")
    assert first.json() == second.json()
    assert ContactLedgerEntry.objects.filter(kind="inbound_call").count() == 1
    assert WebhookEvent.objects.filter(event_type="call_inbound").count() == 1


def test_without_a_call_id_the_contact_is_still_recorded(client):
    item = queued_item(phone="+13125550147")
    answer = inbound(client, "+13125550147", call_id=None).json()["call_inbound"]
    reference = answer["metadata"]["ledger_reference"]
    assert reference.startswith("inbound-")
    assert ContactLedgerEntry.objects.get(kind="inbound_call").client_id == item.client_id


def test_a_suspended_client_is_told_apart(client):
    queued_item(phone="+13125550148", phase=Phase.RE_ENGAGEMENT, team="resurrection")
    variables = inbound(client, "+13125550148").json()["call_inbound"]["dynamic_variables"]
    assert variables["account_status"] == "suspended"
    assert variables["phase"] == "Re-engagement"


def test_the_inbound_webhook_is_signed(client):
    body = json.dumps({"event": "call_inbound", "call_inbound": {"from_number": "+13125550149", "to_number": AGENT_NUMBER}})
    response = client.post(INBOUND_URL, data=body, content_type="application/json")
    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "body",
    ["{oops", json.dumps({"event": "call_inbound"}), json.dumps({"event": "call_inbound", "call_inbound": {"to_number": AGENT_NUMBER}})],
    ids=["not-json", "no-call-inbound", "no-from-number"],
)
def test_a_malformed_inbound_request_is_400(client, body):
    response = post_signed(client, body, url=INBOUND_URL)
    assert response.status_code == 400
    assert not ContactLedgerEntry.objects.exists()


def test_the_inbound_calls_own_events_record_its_outcome_and_conversation(client):
    item = queued_item(phone="+13125550150")
    inbound(client, "+13125550150", call_id="call_in_conv")
    call = inbound_call_object("call_in_conv", caller="+13125550150", agent_number=AGENT_NUMBER)
    assert post_signed(client, event("call_ended", call)).status_code == 204
    entry = ContactLedgerEntry.objects.get(kind="inbound_call")
    assert entry.outcome == "answered"
    conversation = ContactLedgerEntry.objects.get(kind="conversation")
    assert (conversation.client_id, conversation.reference) == (item.client_id, "call_in_conv")

    custom = {"dispute": "Says the debt belongs to their former business partner."}
    call = inbound_call_object("call_in_conv", caller="+13125550150", agent_number=AGENT_NUMBER)
    call["call_analysis"] = call_analysis(custom=custom)
    assert post_signed(client, event("call_analyzed", call)).status_code == 204
    task = FollowUpTask.objects.get()
    assert (task.kind, task.client_id, task.source_ref) == ("dispute", item.client_id, "call_in_conv")


def test_each_flow_has_its_own_agent_from_the_account_state(client):
    from cadences.models import DialerSettings
    from campaigns.models import PromiseToPay, Suppression

    dialer = DialerSettings.load()
    dialer.inbound_agent_payment, dialer.inbound_agent_dispute = "agent_pay", "agent_dispute"
    dialer.inbound_agent_escalation, dialer.inbound_agent_generic = "agent_escalate", "agent_generic"
    dialer.inbound_agent_question = "agent_question"
    dialer.save()
    owing = queued_item(phone="+13125550151")
    disputed = queued_item(phone="+13125550152")
    Suppression.objects.create(client_id=disputed.client_id, channel="all", reason=Suppression.Reason.DISPUTE_HOLD, source="test")
    lawyered = queued_item(phone="+13125550153")
    FollowUpTask.objects.create(kind=FollowUpTask.Kind.LEGAL_LANGUAGE, client_id=lawyered.client_id, due_at=timezone.now(), source_ref="x")
    promised = queued_item(phone="+13125550154", amount_due=0)
    PromiseToPay.objects.create(client_id=promised.client_id, promised_date=timezone.localdate(), call_id="call_p")
    paid = queued_item(phone="+13125550155", amount_due=0)
    expected = {
        owing.phone: ("payment", "agent_pay"),
        disputed.phone: ("dispute", "agent_dispute"),
        lawyered.phone: ("escalation", "agent_escalate"),
        promised.phone: ("payment", "agent_pay"),
        paid.phone: ("question", "agent_question"),
        "+13125550199": ("generic", "agent_generic"),
    }
    for n, (phone, (flow, agent)) in enumerate(expected.items()):
        answer = inbound(client, phone, call_id=f"call_flow_{n}").json()["call_inbound"]
        assert (answer["dynamic_variables"]["inbound_flow"], answer["override_agent_id"]) == (flow, agent), phone
