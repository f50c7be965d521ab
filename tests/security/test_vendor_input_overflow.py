"""Vendor input that parses as JSON but that no column stores is a 4xx, never a 500.

`1e999999` is valid JSON; Python reads it as infinity, and PostgreSQL's jsonb refuses it ("value
overflows numeric format"), so a signed Retell event carrying one was a 500 that Retell retried
three times. The suite runs on SQLite and, with DATABASE_URL, on PostgreSQL: both must answer the
same way.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, TestCase
from rest_framework.test import APIClient

from campaigns.models import WebhookEvent
from integrations import jsonbody
from tests.campaigns.retell_factories import INBOUND_URL, WEBHOOK_URL, signed_headers

pytestmark = pytest.mark.django_db

# Written into the raw body as they are: json.dumps would refuse (or rewrite) most of them.
UNSTORABLE_NUMBERS = ["1e999999", "-1e999999", "1e-999999", "0e-999999", "1e309", "2e-330", "1." + "0" * 200, "1" + "0" * 5000]
FINE_NUMBERS = ["1e308", "-5e-324", "12.5", "123456789012345678901234567890", "0"]


def retell_body(number: str) -> str:
    return '{"event":"call_ended","call":{"call_id":"call_overflow","call_status":"ended","duration_ms":%s}}' % number


def post_retell(body: str, *, url: str = WEBHOOK_URL) -> Any:
    with TestCase.captureOnCommitCallbacks(execute=False):
        return Client(raise_request_exception=False).post(url, data=body.encode(), content_type="application/json", **signed_headers(body))


@pytest.mark.parametrize("number", UNSTORABLE_NUMBERS, ids=lambda n: n[:12])
def test_a_signed_retell_event_with_an_unstorable_number_is_a_400(number: str) -> None:
    response = post_retell(retell_body(number))
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
    inbound = '{"event":"call_inbound","call_inbound":{"from_number":"+12125550147","to_number":"+13125550100","x":%s}}' % number
    assert post_retell(inbound, url=INBOUND_URL).status_code == 400


@pytest.mark.parametrize("number", FINE_NUMBERS)
def test_numbers_a_database_stores_are_kept(number: str) -> None:
    response = post_retell(retell_body(number))
    assert response.status_code == 204
    event = WebhookEvent.objects.get()
    # PostgreSQL keeps a number as the exact decimal it was written as; compared as the double.
    assert float(event.payload["call"]["duration_ms"]) == float(json.loads(number))


def test_a_string_no_column_stores_is_kept_as_text(settings: Any) -> None:
    # NUL and a lone surrogate parse, and neither database takes them: stored replaced, not a 500.
    body = '{"event":"call_ended","call":{"call_id":"call_nul","call_status":"ended","transcript":"a\\u0000b\\ud800c"}}'
    assert post_retell(body).status_code == 204
    assert WebhookEvent.objects.get().payload["call"]["transcript"] == "a\ufffdb\ufffdc"


@pytest.mark.parametrize("number", UNSTORABLE_NUMBERS[:4], ids=lambda n: n[:12])
def test_heymarket_and_the_api_refuse_them_too(settings: Any, number: str) -> None:
    settings.HEYMARKET_WEBHOOK_TOKEN = "shared-webhook-token"
    body = '{"type":"message_recieved","id":1,"token":"shared-webhook-token","event_data":{"id":%s,"text":"hi"}}' % number
    with TestCase.captureOnCommitCallbacks(execute=False):
        assert Client().post("/webhooks/heymarket/", data=body, content_type="application/json").status_code == 400
    assert not WebhookEvent.objects.exists()
    staff = APIClient()
    staff.force_authenticate(get_user_model().objects.create_superuser("n", password="pw-for-tests-1"))
    response = staff.post("/api/campaigns/", data='{"date": "2099-01-01", "batch_size": %s}' % number, content_type="application/json")
    assert response.status_code == 400


def test_the_reader_names_the_number() -> None:
    with pytest.raises(jsonbody.JsonBodyError, match="1e999999 is out of the range"):
        jsonbody.loads('{"amount": 1e999999}')
