"""The Retell simulator's calls and webhooks: outcomes, signatures, order, duplicates, retries."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter

import pytest
from django.utils import timezone

from integrations.retell import client as retell
from integrations.sandbox import delivery
from integrations.sandbox import retell as simulator
from integrations.sandbox.models import SimulatedCall, SimulatedDelivery, SimulatorConfig

from .conftest import StubServer

pytestmark = pytest.mark.usefixtures("sandbox")

LATER = dt.timedelta(hours=1)
CUSTOM_FIELDS = {
    "promise_to_pay_date", "promise_to_pay_amount", "dispute", "hardship", "cancellation_request", "legal_language",
    "vulnerable_customer", "callback_requested", "callback_time", "right_party", "wrong_party", "user_requested_dnc",
}


def _configure(**fields: object) -> SimulatorConfig:
    config = SimulatorConfig.load()
    for name, value in fields.items():
        setattr(config, name, value)
    config.save()
    return config


def _call(key: str, to: str = "+12125550147") -> retell.RetellCall:
    return retell.create_phone_call(
        from_number="+12125550100",
        to_number=to,
        agent_id="agent_grace",
        dynamic_variables={"client_name": "Zoë Nakamura", "first_name": "Zoë", "amount_due": "300.00", "transfer_number": "+18005550199"},
        metadata={"attempt_id": key},
        idempotency_key=key,
    )


def _deliver_all(settings, receiver: StubServer) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """Point webhooks at `receiver`, dispatch everything due within the hour, return the bodies."""
    settings.SANDBOX_APP_URL = receiver.url
    delivery.sandbox_dispatch_due(now=timezone.now() + LATER)
    return [r.json() for r in receiver.requests]  # type: ignore[misc]


def test_an_answered_call_sends_started_ended_analyzed_signed(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _configure(outcome_weights={"answered": 1}, conversation_weights={"promise_to_pay": 1.0})
    call = _call("k1")
    bodies = _deliver_all(settings, stub_server)
    assert [b["event"] for b in bodies] == ["call_started", "call_ended", "call_analyzed"]
    for request in stub_server.requests:
        assert request.path == "/webhooks/retell/"
        # Signed over the exact bytes sent, with the key the app verifies with.
        assert retell.verify_signature(request.body.decode("utf-8"), request.headers["X-Retell-Signature"], api_key=retell.webhook_key())
    assert "Zoë" in stub_server.requests[1].body.decode("utf-8")  # non-ASCII kept raw in the signed body
    started, ended, analyzed = (b["call"] for b in bodies)  # type: ignore[misc]
    assert started["call_status"] == "ongoing" and "end_timestamp" not in started
    assert ended["call_id"] == call.call_id and ended["call_status"] == "ended"
    assert ended["disconnection_reason"] in ("user_hangup", "agent_hangup")
    assert "call_analysis" not in ended and ended["transcript"]
    assert ended["metadata"] == {"attempt_id": "k1"}
    analysis = analyzed["call_analysis"]
    assert set(analysis) >= {"call_summary", "in_voicemail", "user_sentiment", "call_successful", "custom_analysis_data"}
    custom = analysis["custom_analysis_data"]
    assert set(custom) == CUSTOM_FIELDS
    if custom["right_party"]:
        assert dt.date.fromisoformat(custom["promise_to_pay_date"]) > timezone.now().date()
        assert custom["promise_to_pay_amount"] in (300.0, 150.0, 75.0)
    assert all(d.status == "delivered" for d in SimulatedDelivery.objects.all())


@pytest.mark.parametrize(
    ("outcome", "status", "reasons"),
    [
        ("no_answer", "not_connected", {"dial_no_answer"}),
        ("busy", "not_connected", {"dial_busy"}),
        ("failed", "not_connected", {"dial_failed", "invalid_destination"}),
        ("error", "error", {"error_unknown"}),
        ("concurrency_limit", "error", {"concurrency_limit_reached"}),
        ("no_valid_payment", "error", {"no_valid_payment"}),
    ],
)
def test_calls_that_never_connect_send_no_call_started(settings, stub_server: StubServer, outcome: str, status: str, reasons: set[str]) -> None:  # type: ignore[no-untyped-def]
    _configure(outcome_weights={outcome: 1})
    _call("k")
    bodies = _deliver_all(settings, stub_server)
    assert [b["event"] for b in bodies] == ["call_ended", "call_analyzed"]
    assert bodies[0]["call"]["call_status"] == status  # type: ignore[index]
    assert bodies[0]["call"]["disconnection_reason"] in reasons  # type: ignore[index]
    assert bodies[1]["call"]["call_analysis"]["custom_analysis_data"] == {}  # type: ignore[index]


def test_voicemail_and_transfer_look_like_retell(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _configure(forced_outcomes={"+12125550101": "voicemail", "+12125550102": "transferred", "+12125550103": "do_not_call"})
    _call("vm", to="+12125550101")
    _call("tr", to="+12125550102")
    _call("dnc", to="+12125550103")
    analyzed = {b["call"]["to_number"]: b["call"] for b in _deliver_all(settings, stub_server) if b["event"] == "call_analyzed"}  # type: ignore[index]
    voicemail = analyzed["+12125550101"]
    assert voicemail["call_analysis"]["in_voicemail"] is True
    assert voicemail["disconnection_reason"] in ("voicemail_reached", "agent_hangup")
    transfer = analyzed["+12125550102"]
    assert transfer["disconnection_reason"] == "call_transfer" and transfer["transfer_destination"] == "+18005550199"
    dnc = analyzed["+12125550103"]
    assert dnc["disconnection_reason"] == "user_requested_dnc"
    assert dnc["call_analysis"]["custom_analysis_data"]["user_requested_dnc"] is True


def test_outcomes_follow_the_weights_and_the_seed() -> None:
    _configure(outcome_weights={"answered": 3, "voicemail": 1, "no_answer": 0}, seed=5, retell_concurrency_limit=1000)
    outcomes = [SimulatedCall.objects.get(call_id=_call(f"w{i}", to=f"+1212555{i:04d}").call_id).outcome for i in range(120)]
    counts = Counter(outcomes)
    assert set(counts) == {"answered", "voicemail"}
    assert 60 <= counts["answered"] <= 105
    # Same seed and same request → same outcome, even in a fresh simulator.
    SimulatedCall.objects.all().delete()
    SimulatedDelivery.objects.all().delete()
    again = [SimulatedCall.objects.get(call_id=_call(f"w{i}", to=f"+1212555{i:04d}").call_id).outcome for i in range(20)]
    assert again == outcomes[:20]


def test_get_call_follows_the_call_through_its_life(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _configure(outcome_weights={"answered": 1})
    call = _call("life")
    assert retell.get_call(call.call_id)["call_status"] == "registered"
    stored = SimulatedCall.objects.get(call_id=call.call_id)
    SimulatedCall.objects.filter(pk=stored.pk).update(started_at=timezone.now() - dt.timedelta(seconds=1))
    assert retell.get_call(call.call_id)["call_status"] == "ongoing"
    live_url = settings.SANDBOX_APP_URL
    _deliver_all(settings, stub_server)
    settings.SANDBOX_APP_URL = live_url
    final = retell.get_call(call.call_id)
    assert final["call_status"] == "ended" and "call_analysis" in final
    assert retell.get_concurrency()["current_concurrency"] == 0


def test_duplicate_knob_delivers_every_webhook_twice(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _configure(outcome_weights={"answered": 1}, duplicate_rate=1.0)
    _call("dup")
    events = [b["event"] for b in _deliver_all(settings, stub_server)]
    assert Counter(events) == {"call_started": 2, "call_ended": 2, "call_analyzed": 2}


def test_out_of_order_knob_sends_analyzed_before_ended(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _configure(outcome_weights={"answered": 1}, out_of_order_rate=1.0)
    _call("ooo")
    events = [b["event"] for b in _deliver_all(settings, stub_server)]
    assert events == ["call_analyzed", "call_ended", "call_started"]


def test_webhooks_are_due_only_when_the_call_reaches_them(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _configure(outcome_weights={"answered": 1}, ring_seconds=10, talk_seconds_min=100, talk_seconds_max=100, analysis_delay_seconds=20, speed_factor=10)
    call = _call("timing")
    stored = SimulatedCall.objects.get(call_id=call.call_id)
    # Speed 10: ≤1 s of ring, 10 s of talk, 2 s of analysis — in real time.
    assert stored.started_at is not None
    assert (stored.ended_at - stored.started_at).total_seconds() == pytest.approx(10, abs=0.01)
    assert (stored.analyzed_at - stored.ended_at).total_seconds() == pytest.approx(2, abs=0.01)
    settings.SANDBOX_APP_URL = stub_server.url
    assert delivery.sandbox_dispatch_due(now=stored.created_at) == 0
    assert delivery.sandbox_dispatch_due(now=stored.started_at) == 1
    assert delivery.sandbox_dispatch_due(now=stored.ended_at + dt.timedelta(seconds=1)) == 1
    assert delivery.sandbox_dispatch_due(now=stored.analyzed_at) == 1
    assert [r.json()["event"] for r in stub_server.requests] == ["call_started", "call_ended", "call_analyzed"]  # type: ignore[index]


def test_a_refusing_app_gets_three_retries_then_the_delivery_fails(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _configure(outcome_weights={"no_answer": 1})
    call = _call("retry")
    stub_server.answer((500, {"error": "down"}))
    settings.SANDBOX_APP_URL = stub_server.url
    now = timezone.now() + LATER
    for minute in range(6):
        delivery.sandbox_dispatch_due(now=now + dt.timedelta(minutes=minute))
    ended = SimulatedDelivery.objects.get(reference=call.call_id, event="call_ended")
    assert ended.status == "failed" and ended.attempts == 4 and ended.last_status_code == 500
    assert sum(1 for r in stub_server.requests if r.json()["event"] == "call_ended") == 4  # type: ignore[index]


def test_a_retry_that_is_accepted_stops(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _configure(outcome_weights={"no_answer": 1})
    call = _call("retry-ok")
    stub_server.answer((503, {}), (200, {}))
    settings.SANDBOX_APP_URL = stub_server.url
    now = timezone.now() + LATER
    for minute in range(4):
        delivery.sandbox_dispatch_due(now=now + dt.timedelta(minutes=minute))
    rows = SimulatedDelivery.objects.filter(reference=call.call_id)
    assert {(d.event, d.status, d.attempts) for d in rows} == {("call_ended", "delivered", 2), ("call_analyzed", "delivered", 1)}


def test_a_claimed_delivery_is_never_sent_by_a_second_dispatcher(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _configure(outcome_weights={"no_answer": 1})
    _call("claim")
    # Another process claimed everything a moment ago.
    SimulatedDelivery.objects.update(status=SimulatedDelivery.Status.SENDING, claimed_by="other", claimed_at=timezone.now())
    settings.SANDBOX_APP_URL = stub_server.url
    assert delivery.sandbox_dispatch_due(now=timezone.now() + dt.timedelta(seconds=30)) == 0
    assert stub_server.requests == []
    # If that process died, its claims come back after a minute and are sent once.
    assert delivery.sandbox_dispatch_due(now=timezone.now() + dt.timedelta(minutes=5)) == 2
    assert len(stub_server.requests) == 2


def test_payloads_are_json_as_the_app_receives_them(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _configure(outcome_weights={"answered": 1})
    _call("json")
    _deliver_all(settings, stub_server)
    raw = stub_server.requests[0].body
    assert raw == json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert stub_server.requests[0].headers["Content-Type"] == "application/json"


def test_a_share_of_the_clients_who_promise_ask_for_the_link_to_pay_now() -> None:
    now = dt.datetime(2025, 6, 10, 15, 0, tzinfo=dt.timezone.utc)
    weights = {"promise_to_pay": 1.0, "payment_link_requested": 0.0}

    def findings(share: float) -> list[dict]:
        return [
            simulator._conversation_findings("answered", {}, random.Random(n), now, weights={**weights, "promise_paid_now": share})
            for n in range(200)
        ]

    assert all(f["promise_to_pay_date"] for f in findings(0.3))
    asked = sum(bool(f.get("payment_link_requested")) for f in findings(0.3))
    assert 35 <= asked <= 85  # about 30% of 200
    assert not any(f.get("payment_link_requested") for f in findings(0.0))
    # Without a promise the share changes nothing.
    no_promise = [simulator._conversation_findings("answered", {}, random.Random(n), now, weights={"promise_paid_now": 1.0}) for n in range(50)]
    assert not any(f.get("payment_link_requested") for f in no_promise)
