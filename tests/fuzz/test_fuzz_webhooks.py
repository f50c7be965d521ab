"""Fuzzing both webhooks: whatever arrives, the answer is a 2xx or a 4xx, never a 500.

Retell bodies are correctly signed, so they get past the signature and reach the parsing,
storage and processing code; HeyMarket bodies carry the right token for the same reason.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client, TestCase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.models import CallAttempt, WebhookEvent
from campaigns.calls import outcomes
from integrations.retell import client as retell
from campaigns.webhooks import inbox
from tests.campaigns.retell_factories import INBOUND_URL, WEBHOOK_URL, call_object, make_dialing_attempt

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
event_names = st.sampled_from(sorted(outcomes.KNOWN_EVENTS)) | st.text(max_size=20)
CALL_FIELDS = (
    "call_id", "call_status", "disconnection_reason", "start_timestamp", "end_timestamp", "duration_ms",
    "transcript", "recording_url", "from_number", "to_number", "direction", "metadata",
    "retell_llm_dynamic_variables", "call_analysis", "transfer_destination", "agent_id",
)  # fmt: skip


def signed_post(body: str, url: str = WEBHOOK_URL) -> Any:
    header = retell.sign(body, api_key=retell.webhook_key(), timestamp_ms=int(time.time() * 1000))
    with TestCase.captureOnCommitCallbacks(execute=False):
        return Client().post(url, data=body.encode("utf-8"), content_type="application/json", HTTP_X_RETELL_SIGNATURE=header)


def assert_not_5xx(response: Any) -> None:
    assert 200 <= response.status_code < 500, (response.status_code, response.content[:300])


@FUZZ
@given(payload=json_values)
def test_retell_random_json_signed(payload: Any) -> None:
    assert_not_5xx(signed_post(json.dumps(payload)))


@FUZZ
@given(body=st.text(max_size=200))
def test_retell_random_text_signed(body: str) -> None:
    assert_not_5xx(signed_post(body))


@FUZZ
@given(raw=st.binary(max_size=200), header=st.text(max_size=100))
def test_retell_random_bytes_with_any_header_are_refused(raw: bytes, header: str) -> None:
    response = Client().post(WEBHOOK_URL, data=raw, content_type="application/json", HTTP_X_RETELL_SIGNATURE=header)
    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()


def call_shaped(known_call_ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    call_id = st.sampled_from(known_call_ids) | st.text(max_size=20) | json_values
    fields = st.dictionaries(st.sampled_from(CALL_FIELDS), json_values, max_size=8)
    return st.builds(
        lambda event, cid, extra, keep_id: {"event": event, "call": {**extra, **({"call_id": cid} if keep_id else {})}},
        event_names,
        call_id,
        fields,
        st.booleans(),
    )


@FUZZ
@given(data=st.data())
def test_retell_call_shaped_events_are_stored_and_processed_without_error(data: st.DataObject) -> None:
    attempt = CallAttempt.objects.order_by("pk").first() or make_dialing_attempt()
    # Half the time, a real call object with some of its fields replaced by random values.
    if data.draw(st.booleans()):
        call = call_object(attempt)
        call.update(data.draw(st.dictionaries(st.sampled_from(CALL_FIELDS), json_values, max_size=4)))
        payload: dict[str, Any] = {"event": data.draw(event_names), "call": call}
    else:
        payload = data.draw(call_shaped([attempt.call_id]))
    response = signed_post(json.dumps(payload))
    assert_not_5xx(response)
    if response.status_code == 204:
        event = WebhookEvent.objects.order_by("-pk").first()
        assert event is not None
        inbox.webhook_event_process(event_id=event.pk, now=attempt.created_at)
        event.refresh_from_db()
        # Malformed fields are ignored or reported, never a crash of the processing.
        assert event.error == "", (payload, event.error)


@FUZZ
@given(payload=json_values | st.fixed_dictionaries({"event": event_names, "call_inbound": json_values}))
def test_retell_inbound_random_json_signed(payload: Any) -> None:
    assert_not_5xx(signed_post(json.dumps(payload), url=INBOUND_URL))


# --- HeyMarket -------------------------------------------------------------------------------

HEYMARKET_URL = "/webhooks/heymarket/"
HEYMARKET_TYPES = st.sampled_from(
    ["message_recieved", "message_received", "target_opt_out", "target_opt_in", "message_status", "message_sent", "message_delivered"]
) | st.text(max_size=20)
EVENT_DATA_FIELDS = ("id", "text", "date", "target", "phone", "inbox", "type", "conversation", "status", "error", "message")


@pytest.fixture(autouse=True)
def heymarket_token(settings: Any) -> None:  # noqa: F811 - pytest-django's settings fixture
    settings.HEYMARKET_API_TOKEN = ""
    settings.HEYMARKET_WEBHOOK_TOKEN = "fuzz-token"


def heymarket_post(body: bytes) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=False):
        return Client().post(HEYMARKET_URL, data=body, content_type="application/json")


@FUZZ
@given(payload=json_values)
def test_heymarket_random_json(payload: Any) -> None:
    if isinstance(payload, dict):
        payload["token"] = "fuzz-token"
    assert_not_5xx(heymarket_post(json.dumps(payload).encode()))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_heymarket_random_bytes(raw: bytes) -> None:
    assert_not_5xx(heymarket_post(raw))


@FUZZ
@given(
    kind=HEYMARKET_TYPES,
    event_data=st.dictionaries(st.sampled_from(EVENT_DATA_FIELDS), json_values, max_size=8)
    | st.fixed_dictionaries(
        {"id": st.integers(0, 10**12), "text": st.text(max_size=60), "phone": st.from_regex(r"\+?1?\d{10}", fullmatch=True)},
        optional={"inbox": json_values, "target": json_values, "status": json_values},
    )
    | json_values,
)
def test_heymarket_event_shaped_bodies(kind: str, event_data: Any) -> None:
    payload = {"type": kind, "id": 1, "token": "fuzz-token", "event_data": event_data}
    assert_not_5xx(heymarket_post(json.dumps(payload).encode()))


# --- Found by the fuzzing above --------------------------------------------------------------


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
def test_non_json_constants_are_a_400_not_a_database_error(constant: str) -> None:
    # Python's json module accepts these; the JSON column refused them with an IntegrityError.
    retell_body = '{"event": "call_analyzed", "call": {"call_id": %s}}' % constant
    assert signed_post(retell_body).status_code == 400
    heymarket_body = '{"type": "message_status", "token": "fuzz-token", "event_data": {"id": %s}}' % constant
    assert heymarket_post(heymarket_body.encode()).status_code == 400
    assert not WebhookEvent.objects.exists()


# --- Bodies that nest without end -------------------------------------------------------------
# Python's json module answers 100,000 `[` with RecursionError, and a body just inside its limit
# overflowed the code that stores it: both were a 500, the HeyMarket and API-token ones before any
# authentication.

DEEP_BODIES = {
    "arrays": "[" * 100_000,
    "objects": '{"event": ' * 20_000 + "1" + "}" * 20_000,
    "just_inside_the_parser": '{"event": "call_ended", "call": {"call_id": "c1", "metadata": ' + "[" * 900 + "]" * 900 + "}}",
}


@pytest.mark.parametrize("shape", DEEP_BODIES)
def test_deeply_nested_bodies_are_a_400_on_every_json_endpoint(shape: str, django_user_model: Any) -> None:
    from rest_framework.test import APIClient

    from django.conf import settings

    body = DEEP_BODIES[shape]
    assert signed_post(body).status_code == 400
    assert signed_post(body, url=INBOUND_URL).status_code == 400
    assert heymarket_post(body.encode()).status_code == 400
    assert not WebhookEvent.objects.exists()

    anonymous = APIClient()
    response = anonymous.post("/api/token/", data=body, content_type="application/json")
    assert response.status_code == 400 and "nests deeper than" in response.json()["detail"]
    staff = APIClient()
    staff.force_authenticate(django_user_model.objects.create_superuser("deep", password="pw-for-tests-1"))
    assert staff.post("/api/campaigns/", data=body, content_type="application/json").status_code == 400

    sandbox = Client().post(
        "/sandbox/retell/v2/create-phone-call",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {settings.RETELL_SANDBOX_KEY}",
    )
    assert sandbox.status_code == 400


@pytest.mark.django_db
def test_an_event_name_holding_a_nul_character_is_stored_without_it() -> None:
    attempt = make_dialing_attempt()
    response = signed_post(json.dumps({"event": "call_\x00ended", "call": call_object(attempt)}))
    assert_not_5xx(response)
    assert WebhookEvent.objects.get().event_type == "call_ended"
