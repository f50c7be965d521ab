"""Retell answering 429, answering 5xx and timing out, while a campaign releases: every item is
still dialed exactly once, and the invariants hold once the webhooks are in."""

from __future__ import annotations

import pytest
from django.db.models import Count

from campaigns.models import Alert, CallAttempt, QueueItem
from integrations import http
from integrations.http import reset_sessions
from integrations.retell import client as retell
from integrations.sandbox.models import SimulatedCall

from .harness import assert_invariants, business_clock, deliver_webhooks, queued_campaign, release_until_done, slow_proxy

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = 100


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same retries, without their pauses: what happens, not how long it takes, is under test.
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.0)
    http.reset_sessions()
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setattr(http, "BACKOFF_JITTER", 0.0)
    monkeypatch.setattr(http, "RETRY_AFTER_MAX", 0)
    reset_sessions()


def assert_each_item_dialed_once(campaign, count: int) -> None:
    items = QueueItem.objects.filter(campaign=campaign)
    assert items.filter(call_attempts=1).count() == count
    per_number = SimulatedCall.objects.values("to_number").annotate(n=Count("pk"))
    assert per_number.count() == count and {row["n"] for row in per_number} == {1}
    placed = CallAttempt.objects.filter(campaign=campaign).exclude(call_id=None)
    assert set(placed.values_list("call_id", flat=True)) == set(SimulatedCall.objects.values_list("call_id", flat=True))


def test_retell_answering_429_delays_calls_and_dials_each_once(sandbox, no_pause) -> None:
    # Two calls at once, each over in a fraction of a second: most creates meet a full account.
    sandbox.retell_concurrency_limit = 2
    sandbox.speed_factor = 200
    sandbox.save()
    campaign = queued_campaign(ITEMS)
    release_until_done(campaign, now_fn=business_clock(speed=200))
    assert CallAttempt.objects.filter(campaign=campaign, status=CallAttempt.Status.NOT_DIALED).exists(), "no 429 was met"
    assert_each_item_dialed_once(campaign, ITEMS)
    deliver_webhooks()
    assert_invariants(campaign)


def test_retell_answering_5xx_requeues_with_the_same_key_and_dials_each_once(sandbox, no_pause) -> None:
    sandbox.create_error_rate = 0.8
    sandbox.save()
    campaign = queued_campaign(ITEMS)
    release_until_done(campaign, now_fn=business_clock(speed=200))
    # Some creates failed through every retry (the alert says so) and went back to the queue; the
    # next release reused their attempt, so Retell saw the same idempotency key again.
    assert Alert.objects.filter(campaign=campaign, source="retell").exists()
    assert CallAttempt.objects.filter(campaign=campaign).count() == ITEMS
    assert_each_item_dialed_once(campaign, ITEMS)
    deliver_webhooks()
    assert_invariants(campaign)


def test_retell_timing_out_after_acting_is_not_dialed_twice(sandbox, no_pause, live_server, settings, monkeypatch) -> None:
    # Every second create-call reaches the simulator (which places the call) and is answered
    # after the client stopped waiting; the retry carries the same idempotency key.
    monkeypatch.setattr(retell, "CREATE_TIMEOUT", (3.05, 0.5))
    proxy = slow_proxy(live_server.url, delay=1.0, slow_every=2)
    settings.SANDBOX_APP_URL = f"http://127.0.0.1:{proxy.server_address[1]}"
    reset_sessions()
    try:
        campaign = queued_campaign(ITEMS // 2)
        release_until_done(campaign, now_fn=business_clock(speed=200))
    finally:
        proxy.shutdown()
        settings.SANDBOX_APP_URL = live_server.url
        reset_sessions()
    assert proxy.RequestHandlerClass.counter > ITEMS // 2, "no create-call timed out"
    assert_each_item_dialed_once(campaign, ITEMS // 2)
    deliver_webhooks()
    assert_invariants(campaign)
