"""Each Retell error path of a release, over real HTTP: 429, 402, 400 and network failures, and
a crashed loop's half-placed batch."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from django.core.signals import request_started
from django.utils import timezone

from campaigns.models import Alert, CallAttempt, Campaign, ContactLedgerEntry, QueueItem
from campaigns.calls import outcomes
from campaigns.calls import release
from campaigns.calls.release import LoopState, Pacer, batch_claim, release_loop_run, release_pass
from integrations import http
from integrations.http import IntegrationError, reset_sessions
from integrations.retell import client as retell

from .release_factories import (  # noqa: F401 - fixtures
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
A = CallAttempt.Status


@pytest.fixture
def step():
    return make_call_step(make_segment())


def run_pass(campaign: Campaign, *, now: dt.datetime = NOW) -> LoopState:
    campaign.refresh_from_db()
    state = LoopState(pacer=Pacer(None))
    release_pass(campaign=campaign, now_fn=lambda: now, state=state)
    return state


@pytest.fixture
def no_pause(monkeypatch):
    # Network retries pause between tries; the pause is not what these tests are about.
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.0)
    http.reset_sessions()


def test_rate_limited_call_returns_to_the_queue_uncounted(sandbox, step):
    sandbox.retell_concurrency_limit = 1
    # An answered call holds its slot for a minute of real time; a quick failure could free it
    # before the next create on a slow machine, and the limit would not be reached.
    sandbox.outcome_weights = {"answered": 1}
    sandbox.save()
    campaign = make_campaign(date=NOW.date(), batch_size=3)
    items = [make_item(campaign, step) for _ in range(3)]
    state = run_pass(campaign)
    first, second, third = reload(items)
    assert first.status == S.DIALING
    for item in (second, third):  # the refused call and the rest of the batch, never sent
        assert item.status == S.QUEUED and item.call_attempts == 0
        assert item.next_attempt_at >= NOW + release.RATE_LIMIT_BACKOFF
    refused = CallAttempt.objects.get(queue_item=second)
    assert refused.status == A.NOT_DIALED and "429" in refused.error and refused.call_id is None
    assert CallAttempt.objects.get(queue_item=third).error == "not sent: Retell rate_limited"
    campaign.refresh_from_db()
    assert campaign.calls_placed == 1 and campaign.failed == 0
    assert ContactLedgerEntry.objects.filter(kind=ContactLedgerEntry.Kind.CALL_ATTEMPT).count() == 1
    assert len(simulated_calls()) == 1
    assert state.paused_until > 0  # the loop backs off before trying Retell again


def test_rate_limited_items_are_called_later_with_a_new_attempt(sandbox, step):
    sandbox.retell_concurrency_limit = 0
    sandbox.save()
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step)
    run_pass(campaign)
    assert reload([item])[0].status == S.QUEUED
    sandbox.retell_concurrency_limit = 10
    sandbox.save()
    run_pass(campaign, now=NOW + dt.timedelta(seconds=30))
    assert reload([item])[0].status == S.QUEUED  # not before the backoff
    run_pass(campaign, now=NOW + release.RATE_LIMIT_BACKOFF + dt.timedelta(seconds=1))
    item.refresh_from_db()
    assert (item.status, item.call_attempts) == (S.DIALING, 1)
    assert CallAttempt.objects.filter(queue_item=item).count() == 2
    assert len(simulated_calls()) == 1


def test_a_number_retell_rejects_fails_the_item_with_the_reason(sandbox, step):
    campaign = make_campaign(date=NOW.date())
    bad = make_item(campaign, step, phone="+0123456789")  # not E.164: Retell answers 400
    good = make_item(campaign, step)
    run_pass(campaign)
    bad, good = reload([bad, good])
    assert bad.status == S.FAILED and bad.last_outcome == "failed"
    assert bad.skip_reason == "retell_rejected"
    assert bad.skip_detail["status"] == 400 and "to_number" in bad.skip_detail["error"]
    attempt = CallAttempt.objects.get(queue_item=bad)
    assert attempt.status == A.ERROR and "E.164" in attempt.error
    assert good.status == S.DIALING  # the rest of the batch goes on
    campaign.refresh_from_db()
    assert (campaign.failed, campaign.calls_placed) == (1, 1)


def test_network_errors_retry_with_the_same_key_then_requeue(sandbox, step, no_pause):
    sandbox.create_error_rate = 1.0  # every create-call answers 500
    sandbox.save()
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step)
    run_pass(campaign)
    item.refresh_from_db()
    assert item.status == S.QUEUED and item.next_attempt_at == NOW + release.NETWORK_BACKOFF
    attempt = CallAttempt.objects.get()
    assert attempt.status == A.NOT_DIALED and attempt.error.startswith("network:")
    assert simulated_calls() == []
    (alert,) = Alert.objects.filter(campaign=campaign, source="retell")
    assert "did not answer" in alert.message and "500" in alert.message

    sandbox.create_error_rate = 0.0
    sandbox.save()
    run_pass(campaign, now=NOW + release.NETWORK_BACKOFF)
    # Released again under the very same idempotency key: if the failed request had reached
    # Retell, Retell would answer with that call instead of dialing again.
    assert CallAttempt.objects.count() == 1
    attempt.refresh_from_db()
    (call,) = simulated_calls()
    assert call.idempotency_key == str(attempt.pk) and attempt.call_id == call.call_id
    assert reload([item])[0].status == S.DIALING


def test_one_failed_create_call_sends_a_bounded_number_of_requests(sandbox, step, no_pause):
    """One retry layer: the HTTP session's. A create-call that fails every time reaches the
    sandbox Retell 1 + MAX_RETRIES times, counted where the requests arrive."""
    sandbox.create_error_rate = 1.0  # every create-call answers 500
    sandbox.save()
    arrived: list[str] = []

    def count(sender, environ, **kwargs):
        if environ.get("PATH_INFO", "").endswith("/create-phone-call"):
            arrived.append(environ["REQUEST_METHOD"])

    request_started.connect(count)
    try:
        campaign = make_campaign(date=NOW.date())
        make_item(campaign, step)
        run_pass(campaign)
    finally:
        request_started.disconnect(count)
    assert arrived == ["POST"] * (1 + http.MAX_RETRIES)
    assert CallAttempt.objects.get().status == A.NOT_DIALED


def test_dialflow_down_releases_nothing_and_warns_the_supervisor_once(sandbox, step, settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.DIALFLOW_URL = f"http://127.0.0.1:{port}"
    settings.DIALFLOW_API_KEY = "dialflow-key"
    reset_sessions()
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step)
    run_pass(campaign)
    run_pass(campaign, now=NOW + dt.timedelta(minutes=1))
    assert reload([item])[0].status == S.QUEUED and not CallAttempt.objects.exists() and simulated_calls() == []
    (alert,) = Alert.objects.filter(campaign=campaign, source="dialflow")
    assert alert.level == Alert.Level.WARNING and item.ring_group in alert.message


def test_a_request_that_reached_retell_is_not_dialed_twice(sandbox, step):
    """The loop crashed after Retell created the call but before the call id was recorded."""
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step)
    claim = batch_claim(campaign=campaign, ring_group="billing", limit=1, available_agents=1, now=NOW)
    (attempt,) = claim.attempts
    first = retell.create_phone_call(
        from_number=attempt.from_number,
        to_number=attempt.to_number,
        agent_id="agent",
        dynamic_variables={},
        metadata={},
        idempotency_key=str(attempt.pk),
    )
    # The crashed loop's lease ran out and its attempt is older than a lease.
    CallAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - dt.timedelta(seconds=release.LEASE_SECONDS + 5))
    outcome = release_loop_run(campaign_id=campaign.pk, worker_id="recovering", now_fn=lambda: NOW, slice_seconds=0, reenqueue=False)
    assert outcome == "continue"
    attempt.refresh_from_db()
    assert attempt.call_id == first.call_id and attempt.status == A.REGISTERED
    assert len(simulated_calls()) == 1
    assert reload([item])[0].status == S.DIALING


@pytest.mark.parametrize(
    ("call_status", "reason", "item_status", "placed"),
    [("ended", "voicemail_reached", S.VOICEMAIL, 1), ("not_connected", "concurrency_limit_reached", S.QUEUED, 0)],
)
def test_a_call_whose_webhook_beat_the_crashed_release_is_recorded_not_redialed(sandbox, step, call_status, reason, item_status, placed):
    """The loop crashed after Retell accepted the call; its webhook then stored the call id and
    the outcome on the attempt while the item was still releasing."""
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step)
    (attempt,) = batch_claim(campaign=campaign, ring_group="billing", limit=1, available_agents=1, now=NOW).attempts
    first = retell.create_phone_call(
        from_number=attempt.from_number, to_number=attempt.to_number, agent_id="agent", dynamic_variables={},
        metadata=release.call_metadata(attempt=attempt), idempotency_key=str(attempt.pk),
    )  # fmt: skip
    ended = {"call_id": first.call_id, "call_status": call_status, "disconnection_reason": reason, "metadata": release.call_metadata(attempt=attempt)}
    outcomes.call_record_apply(call=ended, event_type="call_ended", now=NOW)
    assert reload([item])[0].status == S.RELEASING  # the outcome waits for the release step, which died
    CallAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - dt.timedelta(seconds=release.LEASE_SECONDS + 5))

    release_loop_run(campaign_id=campaign.pk, worker_id="recovering", now_fn=lambda: NOW, slice_seconds=0, reenqueue=False)
    item = reload([item])[0]
    assert item.status == item_status and item.call_attempts == placed
    assert len(simulated_calls()) == 1  # nothing sent again
    campaign.refresh_from_db()
    assert campaign.calls_placed == placed
    assert ContactLedgerEntry.objects.filter(kind=ContactLedgerEntry.Kind.CALL_ATTEMPT).count() == placed
    # A second recovery pass finds nothing left to do.
    release_loop_run(campaign_id=campaign.pk, worker_id="recovering", now_fn=lambda: NOW, slice_seconds=0, reenqueue=False)
    campaign.refresh_from_db()
    assert campaign.calls_placed == placed and len(simulated_calls()) == 1


def _webhook_before_the_record(monkeypatch, **call: str):
    """Retell answers create-call and its call_ended webhook is processed before the release step
    records the call: the real client and the real event processing, only their order forced."""
    real_create = retell.create_phone_call

    def create_then_webhook(**kwargs):
        created = real_create(**kwargs)
        ended = {"call_id": created.call_id, "metadata": kwargs["metadata"], **call}
        outcomes.call_record_apply(call=ended, event_type="call_ended", now=NOW)
        return created

    monkeypatch.setattr(retell, "create_phone_call", create_then_webhook)


@pytest.mark.parametrize(
    ("call_status", "reason", "item_status", "placed", "place_outcome"),
    [
        ("not_connected", "dial_failed", S.FAILED, 1, release.PlaceOutcome.PLACED),
        ("ended", "voicemail_reached", S.VOICEMAIL, 1, release.PlaceOutcome.PLACED),
        ("not_connected", "concurrency_limit_reached", S.QUEUED, 0, release.PlaceOutcome.RATE_LIMITED),
    ],
)
def test_a_webhook_between_create_call_and_its_record_is_applied_by_the_record(
    sandbox, step, monkeypatch, call_status, reason, item_status, placed, place_outcome
):
    """A failed dial is reported at once: its webhook can be processed while the item is still
    releasing. The call is counted once (or not at all when Retell did not dial) and the outcome
    lands on the item, without waiting for reconciliation."""
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step)
    (attempt,) = batch_claim(campaign=campaign, ring_group="billing", limit=1, available_agents=1, now=NOW).attempts
    _webhook_before_the_record(monkeypatch, call_status=call_status, disconnection_reason=reason)

    outcome = release.call_place(attempt=attempt, item=item, campaign=campaign, company_name="Acme", now_fn=lambda: NOW)

    assert outcome == place_outcome
    item = reload([item])[0]
    assert (item.status, item.call_attempts) == (item_status, placed)
    campaign.refresh_from_db()
    assert campaign.calls_placed == placed
    entries = ContactLedgerEntry.objects.filter(kind=ContactLedgerEntry.Kind.CALL_ATTEMPT)
    assert [e.outcome for e in entries] == ([item_status] if placed else [])
    attempt.refresh_from_db()
    assert not attempt.placement_pending
    assert attempt.status == (A.NOT_DIALED if not placed else call_status)
    assert len(simulated_calls()) == 1
    # Nothing is left for recovery, and a second record of the same call changes nothing.
    CallAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - dt.timedelta(seconds=release.LEASE_SECONDS + 5))
    assert release.release_recover(campaign=campaign, now_fn=lambda: NOW, pacer=Pacer(None)) == 0
    assert release._record_placed(attempt=attempt, item=item, campaign=campaign, call_id=attempt.call_id, now=NOW) == release.PlaceOutcome.LOST
    campaign.refresh_from_db()
    assert campaign.calls_placed == placed and reload([item])[0].call_attempts == placed


def test_a_call_known_only_from_its_webhook_is_recorded_not_requeued(sandbox, step, monkeypatch, no_pause):
    """Retell accepted the call but every answer to create-call was lost; the call's webhook
    arrived meanwhile. The item must not go back to the queue, where a new attempt would dial
    the client a second time."""
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step)
    (attempt,) = batch_claim(campaign=campaign, ring_group="billing", limit=1, available_agents=1, now=NOW).attempts
    real_create = retell.create_phone_call
    tries = []

    def accepted_but_answer_lost(**kwargs):
        tries.append(kwargs["idempotency_key"])
        created = real_create(**kwargs)
        if len(tries) == 1:
            started = {"call_id": created.call_id, "call_status": "ongoing", "metadata": kwargs["metadata"]}
            outcomes.call_record_apply(call=started, event_type="call_started", now=NOW)
        raise IntegrationError("read timed out", permanent=False, vendor="retell")

    monkeypatch.setattr(retell, "create_phone_call", accepted_but_answer_lost)
    outcome = release.call_place(attempt=attempt, item=item, campaign=campaign, company_name="Acme", now_fn=lambda: NOW)

    assert outcome == release.PlaceOutcome.PLACED
    assert len(set(tries)) == 1 and len(simulated_calls()) == 1
    item = reload([item])[0]
    assert (item.status, item.call_attempts) == (S.DIALING, 1)
    campaign.refresh_from_db()
    assert campaign.calls_placed == 1
    assert not Alert.objects.filter(campaign=campaign, source="retell").exists()


def test_a_webhook_after_a_network_requeue_keeps_the_same_key_for_the_next_try(sandbox, step, monkeypatch, no_pause):
    """The webhook of a call whose create-call answers were all lost came only after the item was
    queued again: the next release re-sends the same key, and Retell answers with that call."""
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step)
    real_create = retell.create_phone_call
    created = []

    def accepted_but_answer_lost(**kwargs):
        created.append(real_create(**kwargs))
        raise IntegrationError("read timed out", permanent=False, vendor="retell")

    monkeypatch.setattr(retell, "create_phone_call", accepted_but_answer_lost)
    run_pass(campaign)
    assert reload([item])[0].status == S.QUEUED
    (attempt,) = CallAttempt.objects.all()
    started = {"call_id": created[0].call_id, "call_status": "ongoing", "metadata": release.call_metadata(attempt=attempt)}
    outcomes.call_record_apply(call=started, event_type="call_started", now=NOW)

    monkeypatch.setattr(retell, "create_phone_call", real_create)
    run_pass(campaign, now=NOW + release.NETWORK_BACKOFF)
    assert CallAttempt.objects.count() == 1 and len(simulated_calls()) == 1
    item = reload([item])[0]
    assert (item.status, item.call_attempts) == (S.DIALING, 1)


def test_an_interrupted_release_older_than_the_key_is_not_redialed(sandbox, step):
    campaign = make_campaign(date=NOW.date())
    item = make_item(campaign, step)
    (attempt,) = batch_claim(campaign=campaign, ring_group="billing", limit=1, available_agents=1, now=NOW).attempts
    CallAttempt.objects.filter(pk=attempt.pk).update(created_at=timezone.now() - release.IDEMPOTENCY_REUSE - dt.timedelta(minutes=1))
    release_loop_run(campaign_id=campaign.pk, worker_id="recovering", now_fn=lambda: NOW, slice_seconds=0, reenqueue=False)
    item.refresh_from_db()
    assert item.status == S.SKIPPED and item.skip_reason == "release_interrupted"
    assert simulated_calls() == []


class PaymentRequired(BaseHTTPRequestHandler):
    """Answers create-call the way Retell does when the account cannot pay."""

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error_message": "no_valid_payment: add a payment method"}).encode()
        self.send_response(402)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def retell_without_payment(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), PaymentRequired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.RETELL_API_KEY = "key_live_test"
    settings.RETELL_BASE_URL = f"http://127.0.0.1:{server.server_port}"
    reset_sessions()
    yield
    server.shutdown()
    server.server_close()
    reset_sessions()


def test_payment_failure_pauses_the_campaign_with_an_alert(sandbox, step, retell_without_payment):
    campaign = make_campaign(date=NOW.date(), batch_size=3)
    items = [make_item(campaign, step) for _ in range(3)]
    state = LoopState(pacer=Pacer(None))
    release_pass(campaign=campaign, now_fn=lambda: NOW, state=state)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert "no_valid_payment" in campaign.halt_reason
    alert = Alert.objects.get(campaign=campaign)
    assert alert.level == Alert.Level.ERROR and alert.source == "retell" and "resume" in alert.message
    assert all(i.status == S.QUEUED and i.call_attempts == 0 for i in reload(items))
    assert set(CallAttempt.objects.values_list("status", flat=True)) == {A.NOT_DIALED}
    assert campaign.calls_placed == 0
    # The loop ends on its own: the campaign is no longer running.
    assert release_loop_run(campaign_id=campaign.pk, worker_id="w", reenqueue=False) == "ended"
