"""No full phone number, SSN or card number reaches the log output.

The flows that handle the most personal data run with the real logging configuration, and a
handler built like the console handler (same filter, same formatter) captures exactly what would
be written.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils.module_loading import import_string

from cadences.models import ActionType
from campaigns.models import QueueItem, SmsMessage
from campaigns.queue import load as queue
from campaigns.sms import outbound as sms
from integrations import http
from campaigns.lifecycle import campaign as lifecycle
from tests.campaigns.retell_factories import (  # noqa: F401 - retell_tasks_inline is a fixture
    INBOUND_URL,
    ended,
    make_dialing_attempt,
    post_signed,
    retell_tasks_inline,
)
from tests.campaigns.dashboard_factories import supervisor
from tests.campaigns.sms_factories import CAMPAIGN_DATE, queue_item, running_campaign, shipped_cadences  # noqa: F401

# Ten or more digits standing alone (a run inside a hex id such as a call id is not a number).
PHONE_DIGITS = re.compile(r"(?<![0-9A-Za-z])\d{10,}(?![0-9A-Za-z])")
SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
CARD = re.compile(r"(?<![0-9A-Za-z_])(?:\d[ -]?){12,18}\d(?![0-9A-Za-z_])")

SECRET_PHONE = "+1 (312) 555-0187"
SECRET_SSN = "123-45-6789"
SECRET_CARD = "4111 1111 1111 1111"
TRANSCRIPT = (
    "Agent: Hi, this is Grace. Can I reach you at another number?\n"
    f"User: Sure, call me on {SECRET_PHONE} or 3125550187. My social is {SECRET_SSN}.\n"
    f"User: And just take the card, it's {SECRET_CARD}, or 4111-1111-1111-1111.\n"
    "Agent: Please never share card details on a call; I'll text you a secure link."
)


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def log_output() -> Iterator[Captured]:
    """A handler configured like the console handler of LOGGING, on the root logger, at DEBUG."""
    config = django_settings.LOGGING
    console = config["handlers"]["console"]
    stream = io.StringIO()
    # The configured handler as a log collector sees it (JSON lines), writing to this stream.
    handler = import_string(console["()"])(log_format="json")
    handler.setStream(stream)
    for name in console["filters"]:
        filter_conf = dict(config["filters"][name])
        handler.addFilter(import_string(filter_conf.pop("()"))(**filter_conf))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def assert_no_pii(text: str) -> None:
    assert text.strip(), "nothing was logged: the flow did not run"
    assert [line for line in text.splitlines() if PHONE_DIGITS.search(line)] == []
    assert SSN.findall(text) == []
    assert CARD.findall(text) == []
    for secret in (SECRET_PHONE, SECRET_SSN, SECRET_CARD, "5550187"):
        assert secret not in text


def test_the_capture_sees_what_the_console_would_write(log_output: Captured) -> None:
    # The check can fail: a careless line goes through the same filter and comes out masked.
    logging.getLogger("campaigns.careless").warning("calling %s about ssn %s card %s", SECRET_PHONE, SECRET_SSN, SECRET_CARD)
    logging.getLogger("campaigns.careless").info("structured", extra={"phone": "+13125550187", "nested": {"to": ["13125550187"]}})
    assert_no_pii(log_output.text)
    assert "***0187" in log_output.text and "***-**-****" in log_output.text and "[card removed]" in log_output.text


def test_an_identifier_with_a_long_digit_run_is_kept_whole(log_output: Captured) -> None:
    # Retell call ids are 32 hex characters; one in a few thousand has 13 digits in a row.
    call_id = "call_0b07a3169bcf46b4111111111111111be5"
    logging.getLogger("campaigns.careless").info("call %s: card %s, or card:%s", call_id, SECRET_CARD, "4111111111111111", extra={"call_id": call_id})
    (line,) = log_output.lines()
    assert line["call_id"] == call_id and line["event"].startswith(f"call {call_id}:")
    assert line["event"].endswith("card [card removed], or card:[card removed]")
    assert_no_pii(log_output.text)


@pytest.mark.django_db
@pytest.mark.usefixtures("retell_tasks_inline")
def test_a_retell_webhook_with_personal_data_in_the_transcript(client: Client, log_output: Captured, caplog: Any) -> None:
    attempt = make_dialing_attempt(action_type=ActionType.BOTH, phone="+13125550187")
    caplog.set_level(logging.DEBUG)
    assert post_signed(client, ended(attempt, transcript=TRANSCRIPT)).status_code == 204
    # A duplicate, a forged copy and an inbound lookup from the same number log too.
    assert post_signed(client, ended(attempt, transcript=TRANSCRIPT)).status_code == 200
    assert post_signed(client, ended(attempt, transcript=TRANSCRIPT), api_key="forged").status_code == 401
    inbound = {"event": "call_inbound", "call_inbound": {"from_number": "+13125550187", "to_number": "+12125550100"}}
    assert post_signed(client, inbound, url=INBOUND_URL).status_code == 200
    # A client timeline looked up by phone number: django.request logs the path of the 404.
    client.force_login(supervisor())
    client.get("/dashboard/clients/13125550187/")
    attempt.refresh_from_db()
    # Stored with what the caller said in digits withheld (an identity answer, a card number),
    # Grace's own words in full; the log masks the rest.
    assert attempt.transcript.splitlines()[0] == TRANSCRIPT.splitlines()[0]
    assert "123-45-6789" not in attempt.transcript and "4111" not in attempt.transcript
    assert "[withheld]" in attempt.transcript and "Please never share card details" in attempt.transcript
    assert_no_pii(log_output.text)


@pytest.mark.django_db
def test_a_csv_queue_load_with_bad_rows(log_output: Captured) -> None:
    campaign = lifecycle.campaign_create(date=CAMPAIGN_DATE)
    header = "client_id,name,phone,segment,days_past_due,ring_group,amount_due,state,email\n"
    rows = (
        "C1,Pat Doe,+13125550187,RED Initial,1,billing,120.50,NY,p@example.com\n"
        f"C2,Pat Doe,{SECRET_SSN},RED Initial,1,billing,120.50,NY,p@example.com\n"
        f"C3,Pat Doe,{SECRET_CARD},RED Initial,1,billing,120.50,NY,p@example.com\n"
        "C4,Pat Doe,+1312555018,Gold,1,billing,120.50,NY,p@example.com\n"
    )
    upload = SimpleUploadedFile("clients.csv", (header + rows).encode())
    queue.queue_upload_csv(campaign=campaign, upload=upload, filename="clients.csv", now=dt.datetime(2025, 6, 10, 12, tzinfo=dt.timezone.utc))
    assert_no_pii(log_output.text)


@pytest.fixture
def heymarket_sandbox(settings: Any, live_server: Any, shipped_cadences: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    settings.HEYMARKET_API_TOKEN = ""
    settings.SANDBOX_APP_URL = live_server.url
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.01)
    http.reset_sessions()
    yield live_server
    http.reset_sessions()


def test_an_sms_send(heymarket_sandbox: Any, log_output: Captured) -> None:
    morning = dt.datetime(2025, 6, 10, 14, 0, tzinfo=dt.timezone.utc)
    campaign = running_campaign()
    item = queue_item(campaign, phone="+13125550187", client_name="Pat Doe")
    QueueItem.objects.filter(pk=item.pk).update(sms_due_at=morning)
    report = sms.sms_send_due(now=morning)
    assert report.sent == 1
    assert SmsMessage.objects.get(queue_item=item).phone == "+13125550187"
    assert_no_pii(log_output.text)
