"""The Retell simulator calls Grace's live tools mid-call, over signed HTTP, as Retell does."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.models import Account, LiveToolCall, PromiseToPay
from campaigns.queue import identity
from integrations.sandbox import delivery, retell as simulator
from integrations.sandbox.models import SimulatorConfig
from integrations.warehouse.sample import sample_identity
from tests.campaigns.release_factories import make_segment, sandbox  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)


def account(client_id: str, phone: str) -> Account:
    known = sample_identity(client_id=client_id)
    now = timezone.now()
    return Account.objects.create(
        client_id=client_id, name="Robin Vale", phone=phone, segment=make_segment(), amount_due="300.00", days_past_due=20,
        timezones="America/New_York", first_seen_at=now, last_seen_at=now,
        date_of_birth_hash=identity.date_of_birth_hash(known["date_of_birth"]), ssn_last4_hash=identity.ssn_last4_hash(known["ssn_last4"]),
    )  # fmt: skip


def place(client_id: str, phone: str, key: str):
    body = {"from_number": "+12125550100", "to_number": phone, "metadata": {"client_id": client_id}, "idempotency_key": key}
    call, _ = simulator.call_create(body=body, now=timezone.now())
    return call


@pytest.mark.parametrize("weights, verified", [({"identity_verified": 1.0, "identity_failed": 0.0}, True), ({"identity_failed": 1.0}, False)])
def test_a_conversation_calls_the_tools_and_the_portal_answers(sandbox, weights, verified):  # noqa: F811
    config = SimulatorConfig.load()
    config.outcome_weights = {"answered": 1}
    config.conversation_weights = {"promise_to_pay": 1.0, "payment_link": 0.0, "callback_requested": 0.0, **weights}
    config.save()
    account("T-SIM-1", "+12125550131")
    call = place("T-SIM-1", "+12125550131", "key-sim-1")
    planned = [name for name, _ in simulator.live_function_calls(config, call)]
    assert planned == (["verify_identity", "lookup_account", "record_promise"] if verified else ["verify_identity"] * 3)
    delivery.sandbox_dispatch_due(now=timezone.now() + dt.timedelta(hours=2))
    results = list(LiveToolCall.objects.filter(call_id=call.call_id).order_by("created_at").values_list("name", "result"))
    if verified:
        assert results == [("verify_identity", "verified"), ("lookup_account", "disclosed"), ("record_promise", "recorded")]
        promise = PromiseToPay.objects.get(call_id=call.call_id)
        assert promise.amount == 300 and promise.client_id == "T-SIM-1"
    else:
        assert results == [("verify_identity", "failed"), ("verify_identity", "failed"), ("verify_identity", "locked")]
        assert not PromiseToPay.objects.exists()
