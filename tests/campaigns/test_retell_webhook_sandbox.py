"""The Retell simulator calls our webhook over real HTTP: its own payloads, signatures, duplicates
and out-of-order deliveries end in the outcomes it decided; get-call serves reconciliation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.conf import Conf

from campaigns.models import (
    Callback,
    CallAttempt,
    Campaign,
    ContactLedgerEntry,
    FollowUpTask,
    PromiseToPay,
    QueueItem,
    Suppression,
    WebhookEvent,
)
from campaigns.webhooks import reconcile
from campaigns.transitions import campaign_recount
from integrations.retell import client as retell
from integrations.sandbox.delivery import sandbox_dispatch_due
from integrations.sandbox.models import SimulatedDelivery, SimulatorConfig
from tests.campaigns.release_factories import sandbox  # noqa: F401 - fixture
from tests.campaigns.retell_factories import make_dialing_attempt

pytestmark = pytest.mark.django_db(transaction=True)

# The simulator's outcome → the outcome we must record.
EXPECTED = {
    "answered": "answered",
    "voicemail": "voicemail",
    "transferred": "transferred",
    "do_not_call": "answered",
    "no_answer": "no_answer",
    "busy": "no_answer",
    "failed": "failed",
}


@pytest.fixture
def simulator(sandbox: SimulatorConfig, monkeypatch: pytest.MonkeyPatch) -> SimulatorConfig:  # noqa: F811
    # The webhook's processing task runs in the live server's thread, as a worker would run it.
    monkeypatch.setattr(Conf, "SYNC", True)
    sandbox.speed_factor = 10_000  # a simulated call lasts milliseconds
    sandbox.conversation_weights = {name: 0 for name in sandbox.conversation_weights}
    sandbox.save()
    return sandbox


def placed_call(simulator: SimulatorConfig, outcome: str, **item_fields: Any) -> CallAttempt:
    """A dialing item whose call the simulator placed with `outcome` forced for its number."""
    attempt = make_dialing_attempt(call_id="", **item_fields)
    CallAttempt.objects.filter(pk=attempt.pk).update(call_id=None)
    simulator.forced_outcomes = {**simulator.forced_outcomes, attempt.to_number: outcome}
    simulator.save()
    call = retell.create_phone_call(
        from_number="+12125550100",
        to_number=attempt.to_number,
        agent_id=settings.RETELL_AGENT_ID,
        dynamic_variables={"client_name": "Jordan Avery", "amount_due": "123.45", "transfer_number": "+12125550188"},
        metadata={"campaign_id": attempt.campaign_id, "queue_item_id": attempt.queue_item_id, "attempt_id": str(attempt.pk)},
        idempotency_key=str(attempt.pk),
    )
    CallAttempt.objects.filter(pk=attempt.pk).update(call_id=call.call_id)
    attempt.refresh_from_db()
    return attempt


def deliver_everything() -> None:
    later = timezone.now() + dt.timedelta(days=1)
    while sandbox_dispatch_due(now=later):
        pass


def test_every_simulated_outcome_arrives_as_the_same_outcome(simulator):
    simulator.duplicate_rate = 1
    simulator.out_of_order_rate = 0.5
    simulator.save()
    attempts = {outcome: placed_call(simulator, outcome) for outcome in EXPECTED}
    deliver_everything()

    assert not SimulatedDelivery.objects.exclude(status=SimulatedDelivery.Status.DELIVERED).exists()
    # Every event stored once although each was delivered twice; every one processed.
    deliveries = SimulatedDelivery.objects.filter(vendor="retell")
    assert WebhookEvent.objects.count() == deliveries.filter(is_duplicate=False).count()
    assert not WebhookEvent.objects.filter(processed_at__isnull=True).exists()
    assert set(deliveries.filter(is_duplicate=True).values_list("last_status_code", flat=True)) == {200}
    for outcome, attempt in attempts.items():
        attempt.refresh_from_db()
        item = QueueItem.objects.get(pk=attempt.queue_item_id)
        assert attempt.outcome == EXPECTED[outcome], outcome
        assert item.last_outcome == EXPECTED[outcome], outcome
    campaign = Campaign.objects.get(pk=attempts["answered"].campaign_id)
    recount = campaign_recount(campaign=campaign)
    assert {name: getattr(campaign, name) for name in recount} == recount
    dnc = Suppression.objects.get()
    assert (dnc.reason, dnc.phone) == ("do_not_call", attempts["do_not_call"].to_number)
    conversations = set(ContactLedgerEntry.objects.filter(kind="conversation").values_list("reference", flat=True))
    assert conversations == {attempts[o].call_id for o in ("answered", "transferred", "do_not_call")}


def test_what_the_simulated_conversation_produced_is_followed_up(simulator):
    # Every finding the simulator can draw, on one answered call with the right party.
    simulator.conversation_weights = {name: 1 for name in simulator.conversation_weights} | {"wrong_party": 0}
    simulator.save()
    attempt = placed_call(simulator, "answered")
    deliver_everything()
    attempt.refresh_from_db()
    custom = attempt.custom_analysis
    client_id = attempt.queue_item.client_id
    kinds = set(FollowUpTask.objects.filter(client_id=client_id).values_list("kind", flat=True))
    assert kinds == {"dispute", "hardship", "cancellation_request", "legal_language", "vulnerable_customer"}
    # The callback asked for, at a time the client named, is booked for the release loop to dial.
    callback = Callback.objects.get(client_id=client_id)
    assert (callback.consent_call_id, callback.status) == (attempt.call_id, Callback.Status.SCHEDULED)
    promise = PromiseToPay.objects.get()
    assert (promise.call_id, promise.promised_date.isoformat()) == (attempt.call_id, custom["promise_to_pay_date"])
    reasons = set(Suppression.objects.filter(client_id=client_id).values_list("reason", flat=True))
    assert reasons == ({"dispute_hold", "attorney"} if "attorney" in custom["legal_language"] else {"dispute_hold"})


def test_reconciliation_reads_the_outcome_from_the_simulators_get_call(simulator):
    attempt = placed_call(simulator, "voicemail")
    CallAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - dt.timedelta(minutes=16))
    report = reconcile.attempts_reconcile(now=timezone.now())
    assert (report.looked_up, report.resolved) == (1, 1)
    attempt.refresh_from_db()
    assert attempt.outcome == "voicemail"
    assert QueueItem.objects.get(pk=attempt.queue_item_id).status == "voicemail"
    # The webhooks that arrive afterwards change nothing and count nothing twice.
    deliver_everything()
    campaign = Campaign.objects.get(pk=attempt.campaign_id)
    assert campaign.voicemail == 1 == campaign_recount(campaign=campaign)["voicemail"]
