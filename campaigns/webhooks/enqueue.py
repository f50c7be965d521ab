"""The webhook's fast path into django-q2's database broker: one event row and its task row in
one statement.

This is the only module that knows how django-q2 lays out a queued task (the `OrmQ` row: key,
signed payload, lock) and what its task package holds. `tests/campaigns/test_webhook_enqueue.py`
fails when the installed django-q2 changes either, so an upgrade cannot break the webhook
silently; everywhere else tasks go through `async_task`.

Reference: https://django-q2.readthedocs.io/en/master/brokers.html#django-orm
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any

from django.db import connection
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from campaigns.models import WebhookEvent
from campaigns.sql import quoted_names

# The django-q2 releases whose task package and OrmQ columns this module was checked against.
CHECKED_DJANGO_Q_VERSIONS = ("1.11.1",)


def available() -> bool:
    """PostgreSQL with the database as the django-q broker (the default deployment)."""
    return connection.vendor == "postgresql" and Conf.ORM == "default" and not Conf.SYNC and not Conf.BROKER_CLASS


def task_package(func: str, *args: Any, now: dt.datetime) -> str:
    """The signed package `async_task(func, *args, save=False)` enqueues, built without its per-call
    human-readable name and enqueue signal: together they cost more than the rest of a
    webhook's own work."""
    task_id = uuid.uuid4().hex
    task: dict[str, Any] = {"id": task_id, "name": f"webhook-event-{task_id[:12]}", "func": func, "args": args, "save": False}
    if Conf.CACHED:
        task["cached"] = Conf.CACHED
    if Conf.ACK_FAILURES:
        task["ack_failure"] = Conf.ACK_FAILURES
    task["kwargs"] = {}
    task["started"] = now
    return SignedPackage.dumps(task)


@functools.cache
def _insert_sql() -> str:
    et, e_vendor, e_key, e_type, e_ref, e_payload, e_received, e_error, e_result, e_id = quoted_names(
        WebhookEvent, "vendor", "dedupe_key", "event_type", "reference", "payload", "received_at", "error", "result", "id"
    )
    qt, q_key, q_payload, q_lock = quoted_names(OrmQ, "key", "payload", "lock")
    return (
        f"WITH event AS ("
        f"INSERT INTO {et} ({e_vendor}, {e_key}, {e_type}, {e_ref}, {e_payload}, {e_received}, {e_error}, {e_result}) "
        f"VALUES (%s, %s, %s, %s, %s::jsonb, %s, '', '') ON CONFLICT ({e_vendor}, {e_key}) DO NOTHING RETURNING {e_id}"
        f"), task AS (INSERT INTO {qt} ({q_key}, {q_payload}, {q_lock}) SELECT %s, %s, %s FROM event) "
        f"SELECT {e_id} FROM event"
    )


def event_and_task_insert(
    *, vendor: str, dedupe_key: str, event_type: str, reference: str, payload_json: str, func: str, now: dt.datetime
) -> int | None:
    """Insert the event and, only when it is new, its task `func(vendor, dedupe_key)`: one round
    trip and one commit. Returns the new event's id, or None for a duplicate."""
    package = task_package(func, vendor, dedupe_key, now=now)
    with connection.cursor() as cursor:
        cursor.execute(
            _insert_sql(), [vendor, dedupe_key, event_type, reference, payload_json, now, Conf.CLUSTER_NAME, package, now]
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])
