"""POST /webhooks/retell/: signature, storage once, malformed input, unknown events."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.db import DatabaseError, connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from django_q.tasks import async_task
from django.utils import timezone

from campaigns import tasks
from campaigns.models import CallAttempt, Campaign, QueueItem, WebhookEvent
from campaigns.calls import outcomes
from campaigns.transitions import campaign_recount
from campaigns.webhooks import enqueue, inbox
from tests.campaigns.retell_factories import (  # noqa: F401 - retell_tasks_inline is a fixture
    retell_tasks_inline,
    WEBHOOK_URL,
    analyzed,
    call_object,
    ended,
    event,
    make_dialing_attempt,
    post_signed,
    signed_headers,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("retell_tasks_inline")]


def test_what_the_caller_said_to_verify_is_not_kept(client):
    attempt = make_dialing_attempt()
    said = "Agent: Your date of birth, please?\nUser: It's 03/07/1984, and the last four are 4 8 2 1.\nAgent: Thank you, 1984 noted."
    payload = ended(
        attempt,
        transcript=said,
        transcript_object=[{"role": "user", "content": "It's 1984-03-07", "words": [{"word": "1984-03-07"}]}],
        transcript_with_tool_calls=[
            {"role": "tool_call_invocation", "name": "verify_identity", "arguments": '{"date_of_birth": "1984-03-07", "ssn_last4": "4821"}'}
        ],
    )
    assert post_signed(client, payload).status_code == 204
    stored = WebhookEvent.objects.get()
    kept = json.dumps(stored.payload)
    assert "4821" not in kept and "4 8 2 1" not in kept and "03/07/1984" not in kept and "1984-03-07" not in kept
    assert "Agent: Thank you, 1984 noted." in stored.payload["call"]["transcript"]  # Grace's own words stay
    attempt.refresh_from_db()
    assert "4 8 2 1" not in attempt.transcript and "03/07/1984" not in attempt.transcript and "[withheld]" in attempt.transcript


def counters(campaign: Campaign) -> dict[str, int]:
    campaign.refresh_from_db()
    return {name: getattr(campaign, name) for name in campaign_recount(campaign=campaign)}


def test_a_signed_call_ended_is_stored_once_and_processed(client):
    attempt = make_dialing_attempt()
    response = post_signed(client, ended(attempt))
    assert response.status_code == 204
    stored = WebhookEvent.objects.get()
    assert (stored.vendor, stored.event_type, stored.reference) == ("retell", "call_ended", attempt.call_id)
    assert stored.dedupe_key == f"call_ended:{attempt.call_id}"
    assert stored.processed_at is not None and stored.error == ""
    assert stored.payload["call"]["transcript"].startswith("Agent: Hi, this is Grace")
    attempt.refresh_from_db()
    assert attempt.outcome == CallAttempt.Outcome.ANSWERED


def test_with_redis_as_the_broker_the_task_is_pushed_after_the_commit(client, monkeypatch):
    monkeypatch.setattr(inbox.Conf, "ORM", None)
    pushed = []
    monkeypatch.setattr(inbox, "async_task", lambda func, event_id, **options: pushed.append((func, event_id)))
    attempt = make_dialing_attempt()
    body = json.dumps(ended(attempt))
    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        response = client.post(WEBHOOK_URL, data=body, content_type="application/json", **signed_headers(body))
    assert response.status_code == 204
    assert pushed == []  # nothing leaves before the event row is committed
    for callback in callbacks:
        callback()
    assert pushed == [("campaigns.tasks.webhook_event_process_task", WebhookEvent.objects.get().pk)]


def queued() -> list[tuple[str, tuple]]:
    return [(task["func"], task["args"]) for task in (SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("pk"))]


on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="the single-statement accept is PostgreSQL's")


@on_postgresql
def test_on_postgresql_the_event_and_its_task_are_stored_by_one_statement(client, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)  # as deployed: a worker runs the task
    attempt = make_dialing_attempt()
    payload = ended(attempt, transcript="Agent: ¿Hablo con Ana Núñez? 👋")
    with CaptureQueriesContext(connection) as queries:
        assert post_signed(client, payload).status_code == 204
    assert [q["sql"][:40] for q in queries.captured_queries] == ['WITH event AS (INSERT INTO "campaigns_we']
    stored = WebhookEvent.objects.get()
    assert stored.payload == payload and stored.processed_at is None and stored.error == ""
    assert (stored.event_type, stored.reference, stored.dedupe_key) == ("call_ended", attempt.call_id, f"call_ended:{attempt.call_id}")
    assert queued() == [(inbox.PROCESS_BY_KEY_TASK, ("retell", stored.dedupe_key))]

    # A duplicate stores neither an event nor a task.
    assert post_signed(client, payload).status_code == 200
    assert WebhookEvent.objects.count() == 1 and len(queued()) == 1

    # The task, as a worker runs it, processes the event once.
    assert tasks.webhook_event_process_by_key_task("retell", stored.dedupe_key) is True
    assert tasks.webhook_event_process_by_key_task("retell", stored.dedupe_key) is False
    attempt.refresh_from_db()
    assert attempt.outcome == CallAttempt.Outcome.ANSWERED
    assert counters(attempt.campaign)["answered"] == 1


@on_postgresql
def test_on_postgresql_a_body_the_json_column_cannot_take_as_sent_is_stored_made_storable(client, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    attempt = make_dialing_attempt()
    body = json.dumps(ended(attempt, transcript="Agent: hello\x00 there"))  # NUL, sent escaped
    assert "\\u0000" in body
    assert post_signed(client, body).status_code == 204
    assert WebhookEvent.objects.get().payload["call"]["transcript"] == "Agent: hello\ufffd there"
    assert len(queued()) == 1


class KeepPackage:
    """A broker that keeps what `async_task` would enqueue."""

    list_key = "test"

    def __init__(self) -> None:
        self.package = ""

    def enqueue(self, package: str) -> int:
        self.package = package
        return 1


def test_the_processing_task_package_is_the_one_async_task_builds(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    keep = KeepPackage()
    async_task(inbox.PROCESS_BY_KEY_TASK, "retell", "call_ended:call_1", save=False, broker=keep)
    expected = SignedPackage.loads(keep.package)
    now = timezone.now()
    built = SignedPackage.loads(enqueue.task_package(inbox.PROCESS_BY_KEY_TASK, "retell", "call_ended:call_1", now=now))
    assert set(built) == set(expected)
    for key in ("func", "args", "kwargs", "save", "ack_failure"):
        assert built.get(key) == expected.get(key), key
    assert built["started"] == now and len(built["id"]) == 32 and built["name"]


def test_a_task_whose_event_is_gone_does_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="campaigns.calls.outcomes"):
        assert tasks.webhook_event_process_by_key_task("call_ended:call_gone") is False
    assert "webhook event to process not found" in caplog.text


def test_without_the_single_statement_the_task_names_the_event_by_id(client, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(enqueue, "available", lambda: False)
    attempt = make_dialing_attempt()
    assert post_signed(client, ended(attempt)).status_code == 204
    assert queued() == [(inbox.PROCESS_TASK, (WebhookEvent.objects.get().pk,))]


def test_a_duplicate_is_a_no_op_answering_2xx(client):
    attempt = make_dialing_attempt()
    payload = ended(attempt)
    assert post_signed(client, payload).status_code == 204
    before = counters(attempt.campaign)
    for _ in range(3):
        assert post_signed(client, payload).status_code == 200
    assert WebhookEvent.objects.count() == 1
    assert counters(attempt.campaign) == before == campaign_recount(campaign=attempt.campaign)
    assert before["answered"] == 1


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "v=abc,d=0123",
        "d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e",
    ],
    ids=["missing", "empty", "malformed", "non-numeric-timestamp", "no-timestamp"],
)
def test_a_missing_or_malformed_signature_is_401_and_nothing_is_stored(client, caplog, header):
    attempt = make_dialing_attempt()
    body = json.dumps(ended(attempt))
    extra = {} if header is None else {"HTTP_X_RETELL_SIGNATURE": header}
    with caplog.at_level(logging.WARNING, logger="campaigns.webhooks.retell"):
        response = client.post(WEBHOOK_URL, data=body, content_type="application/json", **extra)
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0
    attempt.refresh_from_db()
    assert attempt.outcome == ""
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("campaigns.")]
    assert ours == ["retell webhook rejected: signature"]


def test_a_signature_made_with_another_key_is_401(client):
    attempt = make_dialing_attempt()
    response = post_signed(client, ended(attempt), api_key="somebody-elses-key")
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize("skew_minutes", [-6, 6], ids=["stale", "from-the-future"])
def test_a_signature_more_than_five_minutes_off_is_401(client, skew_minutes):
    attempt = make_dialing_attempt()
    stamp = int(time.time() * 1000) + skew_minutes * 60 * 1000
    response = post_signed(client, ended(attempt), timestamp_ms=stamp)
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0


def test_a_signature_four_minutes_old_is_accepted(client):
    attempt = make_dialing_attempt()
    stamp = int(time.time() * 1000) - 4 * 60 * 1000
    assert post_signed(client, ended(attempt), timestamp_ms=stamp).status_code == 204


def test_a_body_changed_after_signing_is_401(client):
    attempt = make_dialing_attempt()
    body = json.dumps(ended(attempt))
    headers = signed_headers(body)
    tampered = body.replace("user_hangup", "voicemail_reached")
    response = client.post(WEBHOOK_URL, data=tampered, content_type="application/json", **headers)
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0


def test_a_non_ascii_transcript_verifies_on_the_raw_utf8_body(client):
    attempt = make_dialing_attempt()
    transcript = "Agent: ¿Hablo con José Núñez?\nUser: Sí, soy yo — dígame. 你好 👋"
    payload = ended(attempt, transcript=transcript)
    raw = json.dumps(payload, ensure_ascii=False)
    assert raw.encode("utf-8") != raw.encode("ascii", errors="backslashreplace")
    response = post_signed(client, raw)
    assert response.status_code == 204
    attempt.refresh_from_db()
    assert attempt.transcript == transcript


def test_the_signature_is_not_checked_on_re_serialised_json(client):
    # Signed over the raw UTF-8 text; the same JSON re-serialised with ASCII escapes is
    # different bytes, so the signature must not hold for it.
    attempt = make_dialing_attempt()
    payload = ended(attempt, transcript="User: Sí, José al habla.")
    raw = json.dumps(payload, ensure_ascii=False)
    escaped = json.dumps(payload, ensure_ascii=True)
    response = client.post(WEBHOOK_URL, data=escaped, content_type="application/json", **signed_headers(raw))
    assert response.status_code == 401


@pytest.mark.parametrize("body", ["{not json", '{"event": "call_ended", "call": ', "", "\ufeff"])
def test_malformed_json_is_400_and_nothing_is_stored(client, body):
    response = post_signed(client, body)
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize(
    "payload",
    [[1, 2, 3], {"call": {"call_id": "x"}}, {"event": 7, "call": {}}, {"event": "call_ended", "call": "nope"}],
    ids=["array", "no-event", "event-not-a-string", "call-not-an-object"],
)
def test_json_that_is_not_an_event_is_400(client, payload):
    response = post_signed(client, json.dumps(payload))
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_get_is_not_allowed(client):
    assert client.get(WEBHOOK_URL).status_code == 405


def test_an_unknown_event_is_accepted_stored_and_logged(client, caplog):
    attempt = make_dialing_attempt()
    payload = event("call_paused_for_coffee", call_object(attempt, call_status="ongoing"), event_timestamp=1749564000123)
    with caplog.at_level(logging.WARNING, logger="campaigns.calls.outcomes"):
        response = post_signed(client, payload)
    assert response.status_code == 204
    stored = WebhookEvent.objects.get()
    assert stored.event_type == "call_paused_for_coffee"
    assert stored.processed_at is not None
    assert any("unknown type" in r.getMessage() for r in caplog.records)
    attempt.refresh_from_db()
    assert attempt.outcome == "" and attempt.queue_item.status == QueueItem.Status.DIALING


def test_unknown_fields_are_accepted_and_kept_raw(client):
    attempt = make_dialing_attempt()
    payload = ended(attempt, brand_new_field={"nested": [1, 2]}, telephony_identifier={"twilio_call_sid": "CA1"})
    payload["new_envelope_field"] = "kept"
    assert post_signed(client, payload).status_code == 204
    stored = WebhookEvent.objects.get()
    assert stored.payload["new_envelope_field"] == "kept"
    assert stored.payload["call"]["brand_new_field"] == {"nested": [1, 2]}
    attempt.refresh_from_db()
    assert attempt.outcome == CallAttempt.Outcome.ANSWERED


def test_transfer_events_are_told_apart_by_their_timestamp(client):
    attempt = make_dialing_attempt()
    call = call_object(attempt, call_status="ongoing", disconnection_reason=None, transfer_destination="+12125550188")
    first = event("transfer_started", call, event_timestamp=1749564000000)
    second = event("transfer_started", call, event_timestamp=1749564060000)
    assert post_signed(client, first).status_code == 204
    assert post_signed(client, first).status_code == 200
    assert post_signed(client, second).status_code == 204
    keys = sorted(WebhookEvent.objects.values_list("dedupe_key", flat=True))
    assert keys == [
        f"transfer_started:{attempt.call_id}:1749564000000",
        f"transfer_started:{attempt.call_id}:1749564060000",
    ]


def test_an_event_for_an_unknown_call_is_accepted(client, caplog):
    attempt = make_dialing_attempt()
    payload = ended(attempt, call_id="call_we_never_placed", metadata={})
    with caplog.at_level(logging.WARNING, logger="campaigns.calls.outcomes"):
        assert post_signed(client, payload).status_code == 204
    assert WebhookEvent.objects.get().processed_at is not None
    assert any("unknown call" in r.getMessage() for r in caplog.records)


def test_a_processing_failure_keeps_the_event_and_a_retry_finishes_it_once(client, monkeypatch):
    attempt = make_dialing_attempt()
    calls = []

    def failing_retry(*, item, now):
        calls.append(item.pk)
        raise RuntimeError("retry scheduler unavailable")

    monkeypatch.setattr(outcomes.retry, "queue_item_schedule_retry", failing_retry)
    payload = ended(attempt, call_status="not_connected", disconnection_reason="dial_no_answer")
    # Still 2xx: the event is stored, and Retell's retry would only be a duplicate.
    assert post_signed(client, payload).status_code == 204
    stored = WebhookEvent.objects.get()
    assert stored.processed_at is None
    assert "retry scheduler unavailable" in stored.error
    attempt.refresh_from_db()
    # Rolled back together: nothing half-applied.
    assert attempt.outcome == "" and attempt.queue_item.status == QueueItem.Status.DIALING
    assert counters(attempt.campaign)["no_answer"] == 0

    monkeypatch.setattr(outcomes.retry, "queue_item_schedule_retry", lambda *, item, now: calls.append(item.pk))
    later = stored.received_at + inbox.RETRY_AFTER
    assert inbox.webhook_events_retry(now=later) == 1
    assert inbox.webhook_events_retry(now=later) == 0
    stored.refresh_from_db()
    assert stored.processed_at is not None and stored.error == ""
    attempt.refresh_from_db()
    assert attempt.outcome == CallAttempt.Outcome.NO_ANSWER
    assert counters(attempt.campaign)["no_answer"] == 1 == campaign_recount(campaign=attempt.campaign)["no_answer"]


def test_an_event_whose_task_could_not_be_pushed_is_processed_by_the_retry(client, monkeypatch):
    monkeypatch.setattr(inbox.Conf, "ORM", None)  # Redis as the broker, and Redis is down

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unavailable")

    monkeypatch.setattr(inbox, "async_task", broker_down)
    attempt = make_dialing_attempt()
    assert post_signed(client, ended(attempt)).status_code == 204
    stored = WebhookEvent.objects.get()
    assert stored.processed_at is None
    attempt.refresh_from_db()
    assert attempt.outcome == ""
    # Not yet: the retry leaves a just-received event to its own task for a minute.
    monkeypatch.undo()
    monkeypatch.setattr(Conf, "SYNC", True)
    assert inbox.webhook_events_retry(now=stored.received_at) == 0
    assert inbox.webhook_events_retry(now=stored.received_at + inbox.RETRY_AFTER) == 1
    attempt.refresh_from_db()
    assert attempt.outcome == CallAttempt.Outcome.ANSWERED


def test_when_the_database_broker_fails_nothing_is_stored_and_retell_retries(client, monkeypatch):
    def broker_down(*args, **kwargs):
        raise DatabaseError("could not insert the task row")

    monkeypatch.setattr(inbox, "async_task", broker_down)
    attempt = make_dialing_attempt()
    client.raise_request_exception = False
    assert post_signed(client, ended(attempt)).status_code == 500
    assert WebhookEvent.objects.count() == 0
    monkeypatch.undo()
    monkeypatch.setattr(Conf, "SYNC", True)
    assert post_signed(client, ended(attempt)).status_code == 204
    attempt.refresh_from_db()
    assert attempt.outcome == CallAttempt.Outcome.ANSWERED


def test_call_analyzed_is_stored_separately_from_call_ended(client):
    attempt = make_dialing_attempt()
    assert post_signed(client, ended(attempt)).status_code == 204
    assert post_signed(client, analyzed(attempt)).status_code == 204
    assert sorted(WebhookEvent.objects.values_list("event_type", flat=True)) == ["call_analyzed", "call_ended"]


def test_stored_events_are_read_only_in_the_admin(client, django_user_model):
    attempt = make_dialing_attempt()
    post_signed(client, ended(attempt))
    stored = WebhookEvent.objects.get()
    admin_user = django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-test-password")
    client.force_login(admin_user)
    listing = client.get("/admin/campaigns/webhookevent/")
    assert listing.status_code == 200 and attempt.call_id in listing.content.decode()
    page = client.get(f"/admin/campaigns/webhookevent/{stored.pk}/change/")
    assert page.status_code == 200
    assert "Agent: Hi, this is Grace" in page.content.decode()
    assert b'name="_save"' not in page.content
    client.post(f"/admin/campaigns/webhookevent/{stored.pk}/change/", {"event_type": "edited"})
    stored.refresh_from_db()
    assert stored.event_type == "call_ended"


def test_nan_and_infinity_are_not_json(client):
    attempt = make_dialing_attempt()
    payload = ended(attempt)
    payload["call"]["duration_ms"] = float("inf")
    body = json.dumps(payload)
    assert "Infinity" in body
    assert post_signed(client, body).status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_characters_no_database_can_store_are_replaced_and_the_event_kept(client):
    attempt = make_dialing_attempt()
    payload = ended(attempt, transcript="User: hello\u0000 there \ud800!")
    body = json.dumps(payload)  # escapes both as \u0000 and \ud800, as a sender might
    assert "\\u0000" in body and "\\ud800" in body
    assert post_signed(client, body).status_code == 204
    attempt.refresh_from_db()
    assert attempt.transcript == "User: hello\ufffd there \ufffd!"
    assert WebhookEvent.objects.get().payload["call"]["transcript"] == attempt.transcript
    assert attempt.outcome == CallAttempt.Outcome.ANSWERED


def test_numbers_no_call_can_have_are_ignored_and_the_rest_applies(client):
    attempt = make_dialing_attempt()
    payload = ended(attempt, call_cost={"combined_cost": 10**20})
    payload["call"]["duration_ms"] = 2**63
    assert post_signed(client, payload).status_code == 204
    attempt.refresh_from_db()
    assert (attempt.duration_ms, attempt.cost) == (None, None)
    assert attempt.outcome == CallAttempt.Outcome.ANSWERED
    assert WebhookEvent.objects.get().payload["call"]["duration_ms"] == 2**63
