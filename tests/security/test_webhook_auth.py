"""Forged, replayed and stale webhook deliveries, for the cases the vendor tests leave open.

Retell signs with `X-Retell-Signature` (a timestamp and an HMAC over the raw body); HeyMarket
puts a shared token in the body. A forged or stale request must change nothing and disclose
nothing; a replay of an accepted one is a 2xx no-op.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest
from django.test import Client, TestCase

from campaigns.models import (
    CallAttempt,
    ContactLedgerEntry,
    FollowUpTask,
    PromiseToPay,
    QueueItem,
    SmsMessage,
    Suppression,
    WebhookEvent,
)
from cadences.models import ActionType
from integrations.retell import client as retell
from tests.campaigns.retell_factories import (  # noqa: F401 - retell_tasks_inline is a fixture
    INBOUND_URL,
    WEBHOOK_URL,
    analyzed,
    campaign_today,
    ended,
    make_dialing_attempt,
    retell_tasks_inline,
    signed_headers,
)
from tests.campaigns.release_factories import make_call_step, make_item, make_segment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("retell_tasks_inline")]

HEYMARKET_URL = "/webhooks/heymarket/"
_ids = itertools.count(7_770_001)


def snapshot() -> dict[str, Any]:
    """Everything a Retell or HeyMarket event can change."""
    return {
        "events": list(WebhookEvent.objects.order_by("pk").values_list("pk", "processed_at", "error")),
        "attempts": list(CallAttempt.objects.order_by("pk").values_list("pk", "status", "outcome", "transcript")),
        "items": list(QueueItem.objects.order_by("pk").values_list("pk", "status", "sms_status", "call_attempts")),
        "sms": SmsMessage.objects.count(),
        "tasks": FollowUpTask.objects.count(),
        "promises": PromiseToPay.objects.count(),
        "ledger": ContactLedgerEntry.objects.count(),
        "suppressions": list(Suppression.objects.order_by("pk").values_list("pk", "lifted_at")),
    }


def deliver(client: Client, url: str, body: str, headers: dict[str, str]) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(url, data=body, content_type="application/json", **headers)


# --- Retell ----------------------------------------------------------------------------------


@pytest.mark.parametrize("event_kind", ["ended", "analyzed"])
def test_a_verbatim_replay_of_an_accepted_retell_request_is_a_2xx_no_op(client: Client, event_kind: str) -> None:
    attempt = make_dialing_attempt(action_type=ActionType.BOTH)
    payload = ended(attempt) if event_kind == "ended" else analyzed(attempt)
    body = json.dumps(payload, ensure_ascii=False)
    headers = signed_headers(body)
    assert deliver(client, WEBHOOK_URL, body, headers).status_code == 204
    after_first = snapshot()
    for _ in range(3):
        # The same bytes with the same signature header, as an attacker who captured them would send.
        assert deliver(client, WEBHOOK_URL, body, headers).status_code == 200
    assert snapshot() == after_first
    assert len(after_first["events"]) == 1


def test_a_captured_retell_request_replayed_after_five_minutes_is_401(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    attempt = make_dialing_attempt()
    body = json.dumps(ended(attempt))
    headers = signed_headers(body)  # signed now, as Retell would
    before = snapshot()
    later = time.time() + 5 * 60 + 1
    monkeypatch.setattr(retell.time, "time", lambda: later)
    assert deliver(client, WEBHOOK_URL, body, headers).status_code == 401
    assert snapshot() == before


@pytest.mark.parametrize(
    "forge",
    ["another-key", "stale", "future", "signature-of-another-body"],
)
def test_a_forged_or_stale_inbound_lookup_is_401_and_discloses_nothing(client: Client, forge: str) -> None:
    item = make_item(campaign_today(), make_call_step(make_segment()), client_name="Riley Private", phone="+13125550177")
    body = json.dumps({"event": "call_inbound", "call_inbound": {"from_number": item.phone, "to_number": "+12125550100", "call_id": "c1"}})
    now_ms = int(time.time() * 1000)
    headers = {
        "another-key": signed_headers(body, api_key="not-the-retell-key"),
        "stale": signed_headers(body, timestamp_ms=now_ms - 5 * 60 * 1000 - 1000),
        "future": signed_headers(body, timestamp_ms=now_ms + 5 * 60 * 1000 + 1000),
        "signature-of-another-body": signed_headers(body.replace("c1", "c2")),
    }[forge]
    before = snapshot()
    response = deliver(client, INBOUND_URL, body, headers)
    assert response.status_code == 401
    assert b"Riley" not in response.content and b"dynamic_variables" not in response.content
    assert snapshot() == before


def test_a_retell_signature_header_from_another_request_does_not_carry_over(client: Client) -> None:
    first = make_dialing_attempt()
    second = make_dialing_attempt()
    first_body = json.dumps(ended(first))
    assert deliver(client, WEBHOOK_URL, first_body, signed_headers(first_body)).status_code == 204
    before = snapshot()
    second_body = json.dumps(ended(second))
    assert deliver(client, WEBHOOK_URL, second_body, signed_headers(first_body)).status_code == 401
    assert snapshot() == before


# --- HeyMarket -------------------------------------------------------------------------------


@pytest.fixture
def webhook_token(settings: Any) -> str:
    settings.HEYMARKET_API_TOKEN = ""
    settings.HEYMARKET_WEBHOOK_TOKEN = "shared-webhook-token"
    return "shared-webhook-token"


def opt_event(kind: str, phone: str, *, token: Any, event_id: int | None = None) -> dict[str, Any]:
    digits = phone.lstrip("+")
    return {
        "type": kind,
        "id": 4242,
        "token": token,
        "event_data": {"id": event_id or next(_ids), "target": digits, "phone": digits, "inbox": 41010, "status": "unsubscribed"},
    }


def post_heymarket(payload: Any) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=False):
        return Client().post(HEYMARKET_URL, data=json.dumps(payload), content_type="application/json")


@pytest.mark.parametrize("token", ["forged", "", None, ["shared-webhook-token"], {"token": "shared-webhook-token"}])
def test_a_forged_opt_in_cannot_lift_an_opt_out(webhook_token: str, token: Any) -> None:
    phone = "+12125550166"
    assert post_heymarket(opt_event("target_opt_out", phone, token=webhook_token)).status_code == 200
    before = snapshot()
    assert post_heymarket(opt_event("target_opt_in", phone, token=token)).status_code == 401
    assert snapshot() == before
    assert Suppression.objects.get(phone=phone).lifted_at is None


def test_a_replayed_heymarket_opt_in_after_a_new_opt_out_changes_nothing(webhook_token: str) -> None:
    phone = "+12125550167"
    opt_in = opt_event("target_opt_in", phone, token=webhook_token)
    assert post_heymarket(opt_event("target_opt_out", phone, token=webhook_token)).status_code == 200
    assert post_heymarket(opt_in).status_code == 200
    assert post_heymarket(opt_event("target_opt_out", phone, token=webhook_token)).status_code == 200
    before = snapshot()
    # The earlier opt-in, captured and sent again, must not lift the newer opt-out.
    assert post_heymarket(opt_in).status_code == 200
    assert snapshot() == before
    assert Suppression.objects.filter(phone=phone, lifted_at__isnull=True).exists()
