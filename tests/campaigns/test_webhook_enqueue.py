"""The webhook's fast path into django-q2 (`campaigns.webhooks.enqueue`): what it relies on in the
installed django-q2, and that a task it writes is one the cluster runs."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from django.db import connection
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from campaigns.models import WebhookEvent
from campaigns.webhooks import enqueue, inbox


def test_the_installed_django_q2_is_one_the_fast_path_was_checked_against():
    # An upgrade must re-check `task_package` against `async_task` and the OrmQ columns below,
    # then add its version here.
    assert version("django-q2") in enqueue.CHECKED_DJANGO_Q_VERSIONS


def test_the_orm_queue_still_has_the_columns_the_fast_path_writes():
    columns = {field.name: type(field).__name__ for field in OrmQ._meta.concrete_fields}
    assert {"key": "CharField", "payload": "TextField", "lock": "DateTimeField"}.items() <= columns.items()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement fast path is PostgreSQL's")
def test_a_task_written_by_the_fast_path_is_dequeued_and_names_its_event(settings):
    now = timezone.now()
    event_id = enqueue.event_and_task_insert(
        vendor=WebhookEvent.Vendor.RETELL,
        dedupe_key="call_ended:call_fast",
        event_type="call_ended",
        reference="call_fast",
        payload_json='{"event": "call_ended", "call": {"call_id": "call_fast"}}',
        func=inbox.PROCESS_BY_KEY_TASK,
        now=now,
    )
    assert event_id == WebhookEvent.objects.get(dedupe_key="call_ended:call_fast").pk
    # A duplicate inserts neither row.
    assert enqueue.event_and_task_insert(
        vendor=WebhookEvent.Vendor.RETELL, dedupe_key="call_ended:call_fast", event_type="call_ended", reference="call_fast",
        payload_json="{}", func=inbox.PROCESS_BY_KEY_TASK, now=now,
    ) is None  # fmt: skip

    broker = ORM(list_key=OrmQ.objects.get().key)
    (task_id, package), = broker.dequeue()
    task = SignedPackage.loads(package)
    assert task["func"] == inbox.PROCESS_BY_KEY_TASK and task["args"] == (WebhookEvent.Vendor.RETELL, "call_ended:call_fast")
    broker.acknowledge(task_id)
