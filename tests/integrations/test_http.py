"""The HTTP seam against a real local server: error mapping, bounded retries, timeouts, logs."""

from __future__ import annotations

import json
import logging
import time

import pytest

from integrations import http
from integrations.http import IntegrationError

from .conftest import StubServer

pytestmark = pytest.mark.usefixtures("fast_retries")


def test_success_returns_the_response(stub_server: StubServer) -> None:
    stub_server.answer((201, {"id": 7}))
    response = http.request("vendor", "POST", f"{stub_server.url}/things", idempotent=True, json={"a": 1})
    assert response.status_code == 201 and response.json() == {"id": 7}
    assert len(stub_server.requests) == 1 and stub_server.requests[0].json() == {"a": 1}


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
def test_client_errors_are_permanent_and_never_retried(stub_server: StubServer, status: int) -> None:
    stub_server.answer((status, {"error_message": "bad things"}, {"X-Request-Id": "req-42"}))
    with pytest.raises(IntegrationError) as excinfo:
        http.request("vendor", "POST", f"{stub_server.url}/x", idempotent=True)
    error = excinfo.value
    assert error.permanent and error.status == status and error.vendor == "vendor"
    assert error.request_id == "req-42"
    assert error.body == {"error_message": "bad things"}
    assert "bad things" in str(error)
    assert len(stub_server.requests) == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_three_times_then_raised(stub_server: StubServer, status: int) -> None:
    stub_server.answer((status, {"error": "busy"}))
    with pytest.raises(IntegrationError) as excinfo:
        http.request("vendor", "GET", f"{stub_server.url}/x", idempotent=True)
    assert not excinfo.value.permanent and excinfo.value.status == status
    assert len(stub_server.requests) == 1 + http.MAX_RETRIES


def test_a_retry_that_succeeds_returns_the_success(stub_server: StubServer) -> None:
    stub_server.answer((503, {}), (429, {}, {"Retry-After": "0"}), (200, {"ok": 1}))
    response = http.request("vendor", "POST", f"{stub_server.url}/x", idempotent=True, json={})
    assert response.json() == {"ok": 1}
    assert len(stub_server.requests) == 3


def test_requests_that_are_not_safe_to_repeat_are_not_retried(stub_server: StubServer) -> None:
    stub_server.answer((503, {}), (200, {}))
    with pytest.raises(IntegrationError) as excinfo:
        http.request("vendor", "POST", f"{stub_server.url}/x", idempotent=False, json={})
    assert excinfo.value.status == 503 and not excinfo.value.permanent
    assert len(stub_server.requests) == 1


def test_retry_after_is_carried_on_the_error(stub_server: StubServer) -> None:
    stub_server.answer((429, {"error_message": "slow down"}, {"Retry-After": "7"}))
    with pytest.raises(IntegrationError) as excinfo:
        http.request("vendor", "POST", f"{stub_server.url}/x", idempotent=False)
    assert excinfo.value.retry_after == 7.0


def test_retry_after_is_honoured_between_retries(stub_server: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "RETRY_AFTER_MAX", 10)
    http.reset_sessions()
    stub_server.answer((429, {}, {"Retry-After": "1"}), (200, {}))
    started = time.monotonic()
    http.request("vendor", "GET", f"{stub_server.url}/x", idempotent=True)
    assert time.monotonic() - started >= 0.95
    assert len(stub_server.requests) == 2


def test_a_slow_server_times_out_as_a_transient_error(stub_server: StubServer) -> None:
    stub_server.answer((200, {}, {}, 1.5))
    started = time.monotonic()
    with pytest.raises(IntegrationError) as excinfo:
        http.request("vendor", "POST", f"{stub_server.url}/slow", idempotent=False, timeout=(1.0, 0.3))
    assert time.monotonic() - started < 1.4
    assert not excinfo.value.permanent and excinfo.value.status is None
    assert "may have acted" in str(excinfo.value)  # not safe to repeat: the outcome is unknown
    assert len(stub_server.requests) == 1


def test_read_timeouts_are_retried_when_safe(stub_server: StubServer) -> None:
    stub_server.answer((200, {}, {}, 0.6), (200, {"second": True}))
    response = http.request("vendor", "GET", f"{stub_server.url}/slow", idempotent=True, timeout=(1.0, 0.3))
    assert response.json() == {"second": True}
    assert len(stub_server.requests) == 2


def test_unreachable_vendor_is_transient() -> None:
    with pytest.raises(IntegrationError) as excinfo:
        http.request("vendor", "GET", "http://127.0.0.1:9/nothing-listens-here", idempotent=False, timeout=(0.5, 0.5))
    assert not excinfo.value.permanent and "could not reach" in str(excinfo.value)


def test_one_session_per_vendor() -> None:
    assert http.vendor_session("retell") is http.vendor_session("retell")
    assert http.vendor_session("retell") is not http.vendor_session("heymarket")


def test_logs_carry_the_request_id_and_mask_phone_numbers(stub_server: StubServer, caplog: pytest.LogCaptureFixture) -> None:
    stub_server.answer((404, {"error": "no contact"}, {"X-Request-Id": "abc-123"}))
    with caplog.at_level(logging.INFO, logger="integrations.http"), pytest.raises(IntegrationError):
        http.request("heymarket", "GET", f"{stub_server.url}/v1/contact/15105550147", idempotent=True)
    record = caplog.records[-1]
    assert record.request_id == "abc-123"  # type: ignore[attr-defined]
    assert record.url.endswith("/v1/contact/***0147")  # type: ignore[attr-defined]
    assert "5105550147" not in json.dumps({k: str(v) for k, v in vars(record).items()})


def test_json_body_rejects_a_non_json_success(stub_server: StubServer) -> None:
    stub_server.answer((200, "not an object"))
    response = http.request("vendor", "GET", stub_server.url, idempotent=True)
    assert http.json_body("vendor", response) == "not an object"
    response.headers["Content-Type"] = "application/json"
    response._content = b"<html>"  # what a misconfigured proxy sends
    with pytest.raises(IntegrationError) as excinfo:
        http.json_body("vendor", response)
    assert not excinfo.value.permanent
