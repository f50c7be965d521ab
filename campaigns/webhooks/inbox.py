"""One inbox for every vendor's webhooks: stored once, processed by a task, retried when it failed.

1. **Store** — an authenticated event is stored raw in `WebhookEvent`, once per vendor identity
   (`dedupe_key`: Retell's (event, call_id), or (event, call_id, timestamp) for repeating events;
   HeyMarket's type + `event_data.id`), and its processing task is enqueued in the same commit.
   A duplicate inserts nothing and is answered 2xx, so the vendor stops retrying.
2. **Process** — `webhook_event_process` claims the event row (locked, skipping one another
   worker holds) and runs the vendor's handler; everything the event changes commits together
   with `processed_at` and the handler's `result`. A failure rolls all of it back and records the
   error on the event.
3. **Retry** — `webhook_events_retry` (its own schedule, every minute) runs every unprocessed
   event again once it is a minute old, including one whose task was never enqueued, for at most
   a day: an event still failing after that waits for a person (Admin → Webhook events).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.tasks import async_task

from campaigns.calls import outcomes
from campaigns.conversations import results
from campaigns.models import WebhookEvent
from campaigns.payments import record as payments
from campaigns.queue import identity
from campaigns.sms import inbound as sms_inbound
from campaigns.webhooks import enqueue

log = logging.getLogger(__name__)

Vendor = WebhookEvent.Vendor

PROCESS_TASK = "campaigns.tasks.webhook_event_process_task"
PROCESS_BY_KEY_TASK = "campaigns.tasks.webhook_event_process_by_key_task"
RETRY_AFTER = dt.timedelta(minutes=1)
RETRY_FOR = dt.timedelta(hours=24)

# Retell events whose (event, call_id) identifies one delivery; every other event repeats per
# call and is told apart by its timestamp.
# Reference: https://docs.retellai.com/features/webhook-overview
RETELL_ONCE_PER_CALL_EVENTS = frozenset({"call_started", "call_ended", "call_analyzed"})


class MalformedEvent(ValueError):
    """The body is JSON but not the vendor's event (400, nothing stored)."""


_UNSTORABLE_ESCAPE = re.compile(r"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """The payload with what no database text or JSON column takes (NUL, a lone surrogate)
    replaced by U+FFFD, so an odd event is kept rather than refused."""
    if isinstance(value, str):
        return _UNSTORABLE_CHARS.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


# --- 1. Store ------------------------------------------------------------------------------------


def webhook_event_store(
    *, vendor: str, dedupe_key: str, event_type: str, reference: str, payload: Mapping[str, Any], raw_body: str | None = None
) -> tuple[WebhookEvent, bool]:
    """Store one authenticated event and enqueue its processing; returns (event, created).

    One short transaction: the event row, and — with the database as the django-q broker — the
    task row with it, so a webhook costs a single commit and a task never looks for an event that
    is not committed (with Redis the task is pushed once the row is committed). The unique
    (vendor, dedupe_key) row is the idempotency guard: a concurrent duplicate waits on it, then
    fails its insert, and is answered as the duplicate it is. `raw_body`, when given, is stored
    as sent (it is the payload's own JSON) unless it had to be made storable.
    """
    if raw_body is None or _UNSTORABLE_ESCAPE.search(raw_body):  # only escapes carry them into parsed JSON
        payload = storable(payload)
        raw_body = None
    # PostgreSQL text holds no NUL character; a vendor's (or a forger's) string may.
    event_type = event_type.replace("\x00", "")[:64]
    reference = reference.replace("\x00", "")[:100]
    dedupe_key = dedupe_key.replace("\x00", "")
    if enqueue.available():
        now = timezone.now()
        event_id = enqueue.event_and_task_insert(
            vendor=vendor,
            dedupe_key=dedupe_key,
            event_type=event_type,
            reference=reference,
            payload_json=raw_body if raw_body is not None else json.dumps(payload),
            func=PROCESS_BY_KEY_TASK,
            now=now,
        )
        if event_id is None:
            return WebhookEvent.objects.get(vendor=vendor, dedupe_key=dedupe_key), False
        event = WebhookEvent(
            id=event_id, vendor=vendor, dedupe_key=dedupe_key, event_type=event_type, reference=reference, received_at=now
        )
        event.payload = dict(payload)
        return event, True
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                vendor=vendor, dedupe_key=dedupe_key, event_type=event_type, reference=reference, payload=dict(payload)
            )
            if Conf.ORM:
                # Same database, same commit. If it cannot take the task row it could not take
                # the event either: nothing is stored, the answer is a 5xx and the vendor retries.
                async_task(PROCESS_TASK, event.pk, save=False)
            else:
                transaction.on_commit(lambda: _push(event))
    except IntegrityError:
        existing = WebhookEvent.objects.filter(vendor=vendor, dedupe_key=dedupe_key).first()
        if existing is None:  # an integrity error of another kind
            raise
        return existing, False
    return event, True


def _push(event: WebhookEvent) -> None:
    """Hand a committed event to the Redis broker. A failure is logged, never raised: the event is
    stored, and `webhook_events_retry` processes whatever was not processed a minute later."""
    try:
        async_task(PROCESS_TASK, event.pk, save=False)
    except Exception:
        log.exception("webhook event not enqueued; the retry task will process it", extra={"webhook_event_id": event.pk})


def retell_dedupe_key(*, payload: Mapping[str, Any], raw_body: str) -> str:
    """The identity of one Retell delivery, the same on every retry of it."""
    event = str(payload.get("event") or "")
    given = payload.get("call")
    call: Mapping[str, Any] = given if isinstance(given, dict) else {}
    call_id = str(call.get("call_id") or "")
    if event in RETELL_ONCE_PER_CALL_EVENTS and call_id:
        key = f"{event}:{call_id}"
        # Retell's ids are short; anything longer than the column is stored by its digest.
        return key if len(key) <= 200 else f"{event[:64]}:sha256-{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()}"
    stamp = payload.get("event_timestamp") or payload.get("timestamp")
    if stamp is None and event.startswith("transfer_"):
        stamp = call.get("transfer_end_timestamp") if event == "transfer_ended" else None
    if stamp is None:
        # No timestamp to tell repeats apart: the body itself is the identity, so an exact
        # retry is still a duplicate.
        stamp = "sha256-" + hashlib.sha256(raw_body.encode("utf-8")).hexdigest()[:32]
    return f"{event}:{call_id}:{stamp}"[:200]


def retell_event_accept(*, payload: Mapping[str, Any], raw_body: str) -> tuple[WebhookEvent, bool]:
    """Store a signed Retell event (`MalformedEvent` when it is not one)."""
    event_type = payload.get("event")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("'event' must be a non-empty string")
    call = payload.get("call")
    if call is not None and not isinstance(call, dict):
        raise MalformedEvent("'call' must be an object")
    # What the caller said to verify their identity is not kept (the dedupe key is taken from
    # the body as received).
    withheld = identity.call_object_withheld(call) if call is not None else None
    kept: Mapping[str, Any] = payload
    body: str | None = raw_body
    if withheld is not None and withheld != call:
        kept, body = {**payload, "call": withheld}, None  # the body as sent held them
    return webhook_event_store(
        vendor=Vendor.RETELL,
        dedupe_key=retell_dedupe_key(payload=payload, raw_body=raw_body),
        event_type=event_type,
        reference=str((call or {}).get("call_id") or ""),
        payload=kept,
        raw_body=body,
    )


def heymarket_event_accept(*, payload: Mapping[str, Any]) -> tuple[WebhookEvent, bool]:
    """Store an authenticated HeyMarket event; the shared token is not kept."""
    kept = {k: v for k, v in payload.items() if k != "token"}
    event_data = kept.get("event_data")
    reference = event_data.get("id") if isinstance(event_data, dict) else None
    return webhook_event_store(
        vendor=Vendor.HEYMARKET,
        dedupe_key=sms_inbound.heymarket_event_key(storable(kept)),
        event_type=str(kept.get("type") or ""),
        reference="" if reference is None else str(reference),
        payload=kept,
    )


def stripe_event_accept(*, payload: Mapping[str, Any]) -> tuple[WebhookEvent, bool]:
    """Store a verified Stripe event, once per event id."""
    event_id = payload.get("id")
    event_type = payload.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or not event_type:
        raise MalformedEvent("'id' and 'type' must be non-empty strings")
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    reference = obj.get("id") if isinstance(obj, dict) else None
    return webhook_event_store(
        vendor=Vendor.STRIPE,
        dedupe_key=event_id[:200],
        event_type=event_type,
        reference=str(reference or ""),
        payload=payload,
    )


# --- 2. Process ----------------------------------------------------------------------------------


def _retell_event_apply(*, event_type: str, payload: Mapping[str, Any], now: dt.datetime) -> str:
    call = payload.get("call")
    if not isinstance(call, dict) or not call.get("call_id"):
        log.warning("retell event without a call", extra={"event_type": event_type})
        return "ignored_no_call"
    if event_type not in outcomes.KNOWN_EVENTS:
        log.warning("retell event of an unknown type stored", extra={"event_type": event_type, "call_id": call.get("call_id")})
        return "ignored_unknown_event"
    if event_type == "transcript_updated":
        return "ignored_transcript"  # the final transcript comes with call_ended / call_analyzed
    record = results.call_event_apply(call=call, event_type=event_type, now=now)
    return "applied" if record is not None else "ignored_unknown_call"


def _heymarket_event_apply(*, event_type: str, payload: Mapping[str, Any], now: dt.datetime) -> str:
    return sms_inbound.heymarket_event_process(payload=dict(payload), now=now)


HANDLERS: dict[str, Callable[..., str]] = {
    Vendor.RETELL: _retell_event_apply,
    Vendor.HEYMARKET: _heymarket_event_apply,
    Vendor.STRIPE: payments.stripe_event_apply,
}


def webhook_event_process(*, event_id: int, now: dt.datetime) -> bool:
    """Process one stored event unless it already was; True when this call processed it."""
    try:
        with transaction.atomic():
            event = (
                WebhookEvent.objects.select_for_update(skip_locked=True)
                .filter(pk=event_id, processed_at__isnull=True)
                .first()
            )
            if event is None:
                return False
            handler = HANDLERS.get(event.vendor)
            result = handler(event_type=event.event_type, payload=event.payload, now=now) if handler else "no_handler"
            WebhookEvent.objects.filter(pk=event_id).update(processed_at=now, error="", result=result[:64])
    except Exception as exc:
        if getattr(exc, "retry_later", False):  # expected: e.g. a refund whose payment is not here yet
            log.info("webhook event kept for a retry", extra={"webhook_event_id": event_id, "error": str(exc)[:300]})
        else:
            log.exception("webhook event processing failed", extra={"webhook_event_id": event_id, "error": str(exc)[:300]})
        WebhookEvent.objects.filter(pk=event_id, processed_at__isnull=True).update(error=f"{type(exc).__name__}: {exc}"[:2000])
        return False
    log.info("webhook event processed", extra={"webhook_event_id": event_id, "vendor": event.vendor, "event_type": event.event_type, "result": result})
    return True


def webhook_event_process_by_key(*, vendor: str, dedupe_key: str, now: dt.datetime) -> bool:
    """`webhook_event_process` for a task that names its event by vendor and dedupe key."""
    event_id = WebhookEvent.objects.filter(vendor=vendor, dedupe_key=dedupe_key).values_list("pk", flat=True).first()
    if event_id is None:  # stored and deleted since (pruned): nothing left to do
        log.warning("webhook event to process not found", extra={"vendor": vendor, "dedupe_key": dedupe_key[:200]})
        return False
    return webhook_event_process(event_id=event_id, now=now)


# --- 3. Retry ------------------------------------------------------------------------------------


def webhook_events_retry(*, now: dt.datetime, vendor: str | None = None, limit: int = 500) -> int:
    """Run again the events (of one vendor, or all) whose processing failed or never ran (recent
    ones only); returns how many succeeded."""
    pending = WebhookEvent.objects.filter(
        processed_at__isnull=True, received_at__lte=now - RETRY_AFTER, received_at__gte=now - RETRY_FOR
    )
    if vendor is not None:
        pending = pending.filter(vendor=vendor)
    ids = list(
        pending.order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    done = sum(1 for pk in ids if webhook_event_process(event_id=pk, now=now))
    if ids:
        log.info("webhook events retried", extra={"attempted": len(ids), "processed": done})
    return done
