"""The client timeline: what happened with one client and why, from every kind of row."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cadences.models import Phase
from campaigns.models import ContactLedgerEntry, FollowUpTask, GateDecision, PromiseToPay, QueueItem, Suppression
from tests.campaigns.dashboard_factories import (
    at,
    billing_manager,
    make_attempt,
    make_campaign,
    make_item,
    make_promise,
    make_segment,
    make_sms,
    make_step,
    make_user,
    supervisor,
)

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 3, 10)


@pytest.fixture
def client_history() -> dict[str, Any]:
    step = make_step(make_segment("RED Initial"), day=20, phase=Phase.PAST_DUE)
    campaign = make_campaign(date=DAY)
    item = make_item(campaign, step, client_id="CL-4711", client_name="Avery Jordan", phone="+12125550142")
    attempt = make_attempt(
        item,
        outcome="answered",
        started_at=at(DAY, 10, 5),
        duration_ms=95_000,
        summary="Client agreed to pay on Friday.",
        transcript="Agent: Hello, this is Grace.\nUser: Hi — I can pay on Friday.",
        recording_url="https://recordings.example.com/call_4711.wav",
        custom_analysis={"promise_to_pay_date": "2026-03-13", "right_party": True},
        disconnection_reason="user_hangup",
    )
    make_sms(item, text="Hi Avery, your payment is past due. Reply STOP to opt out.")
    make_promise(attempt, amount="150.00", created_at=at(DAY, 10, 7))
    FollowUpTask.objects.create(
        kind=FollowUpTask.Kind.HARDSHIP, client_id="CL-4711", client_name="Avery Jordan", due_at=at(DAY, 17),
        detail="Lost job last month.", source_ref=attempt.call_id,
    )
    GateDecision.objects.create(
        client_id="CL-4711", campaign=campaign, campaign_date=DAY, queue_item=item, channel="call",
        rule="weekly_call_cap", detail="7 call attempts in the last 7 days (cap 7).",
        inputs={"attempts_in_window": 7, "cap": 7, "window_start": "2026-03-03T10:00:00-05:00"},
        decided_at=at(DAY, 14),
    )
    # A call from a day already flushed: only its ledger entry is left.
    ContactLedgerEntry.objects.create(
        client_id="CL-4711", phone="+12125550142", kind=ContactLedgerEntry.Kind.CALL_ATTEMPT,
        occurred_at=at(DAY - dt.timedelta(days=5), 11), reference="call_from_last_week", outcome="voicemail",
    )
    # Its own attempt's ledger entry is folded into the call on the timeline.
    ContactLedgerEntry.objects.create(
        client_id="CL-4711", phone="+12125550142", kind=ContactLedgerEntry.Kind.CONVERSATION,
        occurred_at=at(DAY, 10, 7), reference=attempt.call_id, outcome="answered",
    )
    # Opted out of SMS by phone number (HeyMarket knows the number, not the client id).
    Suppression.objects.create(phone="+12125550142", channel=Suppression.Channel.SMS, reason=Suppression.Reason.SMS_OPT_OUT, source="heymarket")
    return {"item": item, "attempt": attempt}


def test_it_shows_every_kind_of_event_with_why(client_history: dict[str, Any]) -> None:
    client = Client()
    client.force_login(supervisor())
    response = client.get(reverse("campaigns-client-timeline", args=["CL-4711"]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Avery Jordan" in html
    # The gate decision: the rule that blocked in words, the sentence, and its inputs as a list.
    assert "Not contacted: Seven call attempts in seven days already" in html
    assert "7 call attempts in the last 7 days (cap 7)." in html
    assert "<li>Attempts in window: 7</li>" in html and "<li>Cap: 7</li>" in html
    assert "weekly_call_cap" not in html
    assert "Why was this client not called?" in html
    # The call with its transcript and recording.
    assert "I can pay on Friday." in html
    assert 'href="https://recordings.example.com/call_4711.wav"' in html
    assert "1:35" in html  # 95 s
    assert "Hi Avery, your payment is past due." in html
    assert "Hardship" in html and "Lost job last month." in html
    assert "$150.00" in html
    assert "call_from_last_week" in html
    assert "SMS opt-out" in html
    # The call's analysis and why it ended read in words, not as JSON or Retell's codes.
    assert "<li>Promise to pay date: 2026-03-13</li>" in html and "<li>Right party: yes</li>" in html
    assert "right_party" not in html and "user_hangup" not in html
    assert "(the client hung up)" in html

    kinds = [event.kind for event in response.context["timeline"].events]
    assert sorted(set(kinds)) == ["call", "gate", "ledger", "promise", "sms", "suppression", "task"]
    assert kinds.count("ledger") == 1  # the conversation entry is the call itself
    times = [event.at for event in response.context["timeline"].events]
    assert times == sorted(times, reverse=True)


def test_a_billing_manager_may_read_it_and_others_may_not(client_history: dict[str, Any]) -> None:
    client = Client()
    client.force_login(billing_manager())
    assert client.get(reverse("campaigns-client-timeline", args=["CL-4711"])).status_code == 200
    client.force_login(make_user("no.role"))
    assert client.get(reverse("campaigns-client-timeline", args=["CL-4711"])).status_code == 403


def test_the_queries_do_not_grow_with_the_history(client_history: dict[str, Any]) -> None:
    client = Client()
    client.force_login(supervisor())
    url = reverse("campaigns-client-timeline", args=["CL-4711"])
    client.get(url)
    with CaptureQueriesContext(connection) as before:
        client.get(url)
    item = client_history["item"]
    for n in range(15):
        attempt = make_attempt(item, outcome="voicemail", attempt_number=n + 2)
        make_sms(item)
        GateDecision.objects.create(client_id="CL-4711", channel="sms", rule="suppressed", detail="SMS opt-out", decided_at=timezone.now())
        ContactLedgerEntry.objects.create(
            client_id="CL-4711", phone=item.phone, kind=ContactLedgerEntry.Kind.SMS, occurred_at=timezone.now(), reference=f"old-{n}"
        )
        PromiseToPay.objects.create(client_id="CL-4711", promised_date=DAY, call_id=f"{attempt.call_id}-p")
    with CaptureQueriesContext(connection) as after:
        client.get(url)
    assert len(after.captured_queries) == len(before.captured_queries)


def test_an_unknown_client_gets_a_404_page_that_says_so() -> None:
    client = Client()
    client.force_login(supervisor())
    response = client.get(reverse("campaigns-client-timeline", args=["NOPE-1"]))
    assert response.status_code == 404
    assert "Nothing is recorded for client" in response.content.decode()


def test_search_by_phone_or_id_leads_to_the_timeline(client_history: dict[str, Any]) -> None:
    client = Client()
    client.force_login(supervisor())
    timeline_url = reverse("campaigns-client-timeline", args=["CL-4711"])
    for query in ("CL-4711", "+12125550142", "(212) 555-0142"):
        response = client.get(reverse("campaigns-client-search"), {"q": query})
        assert response.status_code == 302, query
        assert response["Location"] == timeline_url
    missing = client.get(reverse("campaigns-client-search"), {"q": "+19999999999"})
    assert missing.status_code == 200
    assert "No client with the id, name or phone number" in missing.content.decode()


def test_a_client_after_the_flush_still_has_a_history(client_history: dict[str, Any]) -> None:
    QueueItem.objects.filter(client_id="CL-4711").delete()  # the daily cleanup
    client = Client()
    client.force_login(supervisor())
    response = client.get(reverse("campaigns-client-timeline", args=["CL-4711"]))
    assert response.status_code == 200
    kinds = {event.kind for event in response.context["timeline"].events}
    # The calls and texts stay with the client: only the day's queue rows are cleaned up.
    assert {"call", "sms", "promise", "task", "ledger", "suppression", "gate"} <= kinds
