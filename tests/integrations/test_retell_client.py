"""The Retell client against the Retell simulator, over real HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from integrations.http import IntegrationError
from integrations.retell import client as retell
from integrations.sandbox.models import SimulatedCall, SimulatorConfig

pytestmark = pytest.mark.usefixtures("sandbox")


def _create(to: str = "+12125550147", key: str = "attempt-1", **overrides: object) -> retell.RetellCall:
    fields: dict[str, object] = {
        "from_number": "+12125550100",
        "to_number": to,
        "agent_id": "agent_grace",
        "dynamic_variables": {"client_name": "José Muñoz", "amount_due": "125.50", "transfer_number": "+18005550100"},
        "metadata": {"campaign_id": 1, "queue_item_id": 2, "attempt_id": key},
        "idempotency_key": key,
    }
    fields.update(overrides)
    return retell.create_phone_call(**fields)  # type: ignore[arg-type]


def test_create_returns_a_registered_call_with_every_field_sent() -> None:
    call = _create()
    assert call.call_status == "registered" and call.call_id.startswith("call_")
    stored = SimulatedCall.objects.get(call_id=call.call_id)
    assert stored.agent_id == "agent_grace"
    assert stored.dynamic_variables["client_name"] == "José Muñoz"
    assert stored.metadata == {"campaign_id": 1, "queue_item_id": 2, "attempt_id": "attempt-1"}
    assert stored.idempotency_key == "attempt-1"
    assert call.raw["to_number"] == "+12125550147" and call.raw["retell_llm_dynamic_variables"]["amount_due"] == "125.50"


def test_the_same_idempotency_key_returns_the_same_call() -> None:
    first = _create(key="same-key")
    second = _create(key="same-key")
    assert second.call_id == first.call_id
    assert SimulatedCall.objects.count() == 1
    assert _create(key="other-key").call_id != first.call_id


def test_get_call_and_concurrency() -> None:
    call = _create()
    got = retell.get_call(call.call_id)
    assert got["call_id"] == call.call_id and got["call_status"] in ("registered", "ongoing", "ended", "not_connected", "error")
    concurrency = retell.get_concurrency()
    assert concurrency["concurrency_limit"] == 20 and concurrency["current_concurrency"] == 1


def test_get_unknown_call_is_a_permanent_404() -> None:
    with pytest.raises(IntegrationError) as excinfo:
        retell.get_call("call_does_not_exist")
    assert excinfo.value.permanent and excinfo.value.status == 404


def test_beyond_the_concurrency_limit_create_answers_429_after_retries() -> None:
    config = SimulatorConfig.load()
    config.retell_concurrency_limit = 2
    config.outcome_weights = {"answered": 1}
    config.save()
    _create(key="a")
    _create(key="b")
    with pytest.raises(IntegrationError) as excinfo:
        _create(key="c")
    assert excinfo.value.status == 429 and not excinfo.value.permanent
    assert excinfo.value.retry_after == 1.0
    assert SimulatedCall.objects.count() == 2
    assert retell.get_concurrency()["current_concurrency"] == 2


def test_an_ended_call_frees_its_slot() -> None:
    config = SimulatorConfig.load()
    config.retell_concurrency_limit = 1
    config.save()
    first = _create(key="a")
    SimulatedCall.objects.filter(call_id=first.call_id).update(ended_at=timezone.now() - dt.timedelta(seconds=1))
    assert _create(key="b").call_id != first.call_id


def test_invalid_numbers_are_a_permanent_400() -> None:
    with pytest.raises(IntegrationError) as excinfo:
        _create(to="2125550147")
    assert excinfo.value.permanent and excinfo.value.status == 400
    assert "to_number" in str(excinfo.value)


def test_server_errors_are_retried_with_the_same_key_then_raised() -> None:
    config = SimulatorConfig.load()
    config.create_error_rate = 1.0
    config.save()
    with pytest.raises(IntegrationError) as excinfo:
        _create()
    assert excinfo.value.status == 500 and not excinfo.value.permanent
    assert SimulatedCall.objects.count() == 0  # nothing half-created


def test_dynamic_variables_must_be_strings_before_anything_is_sent() -> None:
    with pytest.raises(IntegrationError, match="amount_due") as excinfo:
        _create(dynamic_variables={"amount_due": 125.5})
    assert excinfo.value.permanent
    assert SimulatedCall.objects.count() == 0


def test_missing_agent_id_is_an_actionable_permanent_error() -> None:
    with pytest.raises(IntegrationError, match="RETELL_AGENT_ID") as excinfo:
        _create(agent_id="")
    assert excinfo.value.permanent


def test_a_wrong_key_is_refused(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RETELL_SANDBOX_KEY = "not-what-the-simulator-expects"
    # The simulator checks the key it is configured with, which is now this one; point the
    # client at a different one by making the request by hand.
    from integrations import http

    with pytest.raises(IntegrationError) as excinfo:
        http.request("retell", "GET", f"{retell.base_url()}/get-concurrency", idempotent=True, headers={"Authorization": "Bearer nope"})
    assert excinfo.value.status == 401 and excinfo.value.permanent


def test_the_simulator_is_gone_when_retell_is_live(settings, sandbox) -> None:  # type: ignore[no-untyped-def]
    settings.RETELL_API_KEY = "key_live"
    settings.RETELL_BASE_URL = sandbox.url + "/sandbox/retell"  # the live client, aimed at the sandbox URL
    with pytest.raises(IntegrationError) as excinfo:
        retell.get_concurrency()
    assert excinfo.value.status == 404
