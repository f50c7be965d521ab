"""Every Retell webhook delivered three times, in shuffled order, across a day of calls: the final
state and the counters are those of a clean run of the same calls.

Two campaigns place the same calls — item i of each has the same outcome, forced per number in
the simulator, and no conversation findings, so nothing about a call depends on its random call
id — and the simulator delivers each campaign's webhooks over HTTP: the first cleanly (each once,
in the order Retell sends them), the second each three times with every delivery shuffled among
all the others (so `call_analyzed` often comes before `call_ended`, `call_started` last). The
size is CHAOS_WEBHOOK_CALLS calls per campaign (default 10,000, a day's worth; about an hour on two
cores, so CHAOS_WEBHOOK_CALLS=500 gives a quick run). The business clock runs at real time: the
calls need no backoff to pass, and the calling window must stay open for all of them.
"""

from __future__ import annotations

import datetime as dt
import os
import random

import pytest
from django.db.models import Count, Q

from campaigns.models import CallAttempt, Campaign, FollowUpTask, QueueItem, Suppression, WebhookEvent
from integrations.sandbox.models import DEFAULT_CONVERSATION_WEIGHTS, SimulatedDelivery, SimulatorConfig
from tests.campaigns.release_factories import item_fields

from .harness import NOW, assert_invariants, business_clock, call_step, deliver_webhooks, queued_campaign, release_until_done

pytestmark = pytest.mark.django_db(transaction=True)

CALLS = int(os.environ.get("CHAOS_WEBHOOK_CALLS", "10000"))
OUTCOMES = ("answered", "voicemail", "transferred", "do_not_call", "no_answer", "busy", "declined", "failed", "error")
COUNTERS = ("calls_placed", "answered", "voicemail", "transferred", "no_answer", "failed", "skipped", "ineligible")


def phone(prefix: str, n: int) -> str:
    return f"+1{prefix}{n // 10000 % 10}55{n % 10000:04d}"


def force_outcomes(sandbox: SimulatorConfig, prefix: str) -> None:
    """Item n of either campaign ends as OUTCOMES[n % 9]; only the campaign being called is listed
    (the simulator reads the list on every call)."""
    sandbox.forced_outcomes = {phone(prefix, n): OUTCOMES[n % len(OUTCOMES)] for n in range(CALLS)}
    sandbox.save()


def campaign_of_calls(prefix: str, day: int) -> Campaign:
    campaign = queued_campaign(0, date=NOW.date() + dt.timedelta(days=day))
    step = call_step()
    QueueItem.objects.bulk_create(
        [QueueItem(**item_fields(campaign, step, client_id=f"{prefix}{n:06d}", phone=phone(prefix, n))) for n in range(CALLS)],
        batch_size=2000,
    )
    return campaign


def triplicate_and_shuffle(seed: int) -> int:
    """Two more copies of every pending delivery, then every delivery due in a random order."""
    pending = list(SimulatedDelivery.objects.filter(status=SimulatedDelivery.Status.PENDING))
    copies = [
        SimulatedDelivery(vendor=d.vendor, event=d.event, reference=d.reference, payload=d.payload, due_at=d.due_at, is_duplicate=True)
        for d in pending
        for _ in range(2)
    ]
    SimulatedDelivery.objects.bulk_create(copies, batch_size=2000)
    rows = list(SimulatedDelivery.objects.filter(status=SimulatedDelivery.Status.PENDING).only("pk"))
    random.Random(seed).shuffle(rows)
    start = min(d.due_at for d in pending)
    for position, row in enumerate(rows):
        row.due_at = start + dt.timedelta(milliseconds=position)
    SimulatedDelivery.objects.bulk_update(rows, ["due_at"], batch_size=2000)
    return len(rows)


def final_state(campaign: Campaign, prefix: str) -> dict[str, object]:
    items = {
        c.removeprefix(prefix): rest
        for c, *rest in QueueItem.objects.filter(campaign=campaign).values_list(
            "client_id", "status", "last_outcome", "call_attempts", "sms_status", "skip_reason"
        )
    }
    attempts = {
        c.removeprefix(prefix): rest
        for c, *rest in CallAttempt.objects.filter(campaign=campaign).values_list("queue_item__client_id", "status", "outcome")
    }
    campaign.refresh_from_db()
    return {
        "items": items,
        "attempts": attempts,
        "counters": {name: getattr(campaign, name) for name in COUNTERS},
        "suppressions": sorted(
            (client_id.removeprefix(prefix), number[5:], channel, reason)
            for client_id, number, channel, reason in Suppression.objects.filter(Q(client_id__startswith=prefix) | Q(phone__startswith=f"+1{prefix}")).values_list(
                "client_id", "phone", "channel", "reason"
            )
        ),
        "follow_ups": FollowUpTask.objects.filter(client_id__startswith=prefix).count(),
    }


def test_triplicated_shuffled_webhooks_leave_the_state_of_a_clean_run(sandbox) -> None:
    sandbox.conversation_weights = dict.fromkeys(DEFAULT_CONVERSATION_WEIGHTS, 0)
    sandbox.duplicate_rate = sandbox.out_of_order_rate = 0
    sandbox.retell_concurrency_limit = 30_000
    sandbox.dialflow_pattern = [50]
    sandbox.save()

    timeout = 900 + CALLS * 0.5  # a generous bound on placing the calls, not a goal

    force_outcomes(sandbox, "646")
    clean = campaign_of_calls("646", day=0)
    release_until_done(clean, now_fn=business_clock(NOW, speed=1), timeout=timeout)
    deliver_webhooks(senders=1)

    force_outcomes(sandbox, "718")
    chaotic = campaign_of_calls("718", day=1)
    release_until_done(chaotic, now_fn=business_clock(NOW + dt.timedelta(days=1), speed=1), timeout=timeout)
    deliveries = triplicate_and_shuffle(seed=CALLS)
    deliver_webhooks(senders=4)

    assert deliveries >= 3 * 2 * CALLS
    assert not WebhookEvent.objects.filter(processed_at=None).exists()
    # Each event stored once, however many times it came.
    assert WebhookEvent.objects.count() == SimulatedDelivery.objects.values("event", "reference").distinct().count()
    expected, got = final_state(clean, "646"), final_state(chaotic, "718")
    assert got["counters"] == expected["counters"]
    assert got == expected
    assert dict(QueueItem.objects.filter(campaign=chaotic).values_list("status").annotate(n=Count("pk"))).keys() >= {"answered", "voicemail", "transferred", "no_answer", "failed"}
    for campaign in (clean, chaotic):
        assert_invariants(campaign)
