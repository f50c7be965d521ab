"""Owner alerts: a follow-up task's owner (or, while nobody owns it, its team) is told.

Disputes, legal language, vulnerable customers and compliance exceptions are sent at once;
every other task goes in the hourly digest. A message names the kind of task, the client's
first name, the last four digits of the phone and the link to the client's timeline — nothing
more: no amount, no full number, no detail text (the timeline, behind the portal's login, has those).

Delivery is at least once and never loses a task: each task is claimed with a conditional
update before the alert goes out; a failed alert stays pending with a growing delay (and goes
in the digest too), and a task is marked alerted only after the notification was accepted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import F, Q
from django.urls import reverse

from campaigns.alerts import alert_raise
from campaigns.models import Account, Alert, FollowUpTask, NotificationTarget
from campaigns.owners.routing import follow_up_task_route
from integrations.http import IntegrationError
from integrations.notify import client as notify

log = logging.getLogger(__name__)

# While one worker sends a task's alert, no other takes it; a worker that died frees it after this.
SEND_LEASE = dt.timedelta(minutes=5)
RETRY_DELAYS = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=15), dt.timedelta(hours=1))
# After this many failures in a row a supervisor is told; the alert is still retried.
ALERT_SUPERVISOR_AFTER = 3
SWEEP_BATCH = 200


@dataclass(frozen=True)
class Destination:
    key: str
    label: str
    urls: tuple[str, ...]


@dataclass
class AlertReport:
    routed: int = 0
    sent: int = 0
    failed: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)


def timeline_url(client_id: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("campaigns-client-timeline", args=[client_id])


def task_url(task: FollowUpTask) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("admin:campaigns_followuptask_change", args=[task.pk])


def last_four(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return digits[-4:]


def task_line(task: FollowUpTask, *, first_name: str) -> str:
    """One task as an alert names it: kind, first name, last four digits, the link."""
    who = first_name or "Unknown caller"
    four = last_four(task.phone)
    phone = f", phone ending {four}" if four else ""
    link = timeline_url(task.client_id) if task.client_id else task_url(task)
    return f"{task.get_kind_display()} — {who}{phone}: {link}"


def first_names(tasks: Iterable[FollowUpTask]) -> dict[str, str]:
    """The first name of each task's client: from the account when there is one, else from the
    name the task was raised with."""
    tasks = list(tasks)
    names = dict(Account.objects.filter(client_id__in={t.client_id for t in tasks if t.client_id}).values_list("client_id", "name"))
    out: dict[str, str] = {}
    for task in tasks:
        name = names.get(task.client_id) or task.client_name
        out[task.client_id] = name.split()[0] if name.split() else ""
    return out


def immediate_message(task: FollowUpTask, *, first_name: str) -> tuple[str, str]:
    title = f"{task.get_kind_display()}: a follow-up task needs you"
    return title, task_line(task, first_name=first_name)


def digest_message(tasks: list[FollowUpTask], *, names: dict[str, str]) -> tuple[str, str]:
    title = f"{len(tasks)} follow-up task{'s' if len(tasks) != 1 else ''} waiting"
    return title, "\n".join(task_line(task, first_name=names.get(task.client_id, "")) for task in tasks)


def destination_for(task: FollowUpTask) -> Destination:
    """The owner's notification URLs; the team's while nobody owns the task, or when the owner has none."""
    if task.owner_id is not None:
        target = NotificationTarget.objects.filter(user_id=task.owner_id, active=True).first()
        if target is not None and target.url_list:
            return Destination(key=f"user:{task.owner_id}", label=f"{task.owner} ({target.services})", urls=tuple(target.url_list))
    target = NotificationTarget.objects.filter(team=task.team, active=True).first()
    label = f"team {task.get_team_display()}"
    if target is None or not target.url_list:
        owner = f"{task.owner}, " if task.owner_id is not None else ""
        return Destination(key=f"team:{task.team}", label=f"{owner}{label} (no notification URL)", urls=())
    return Destination(key=f"team:{task.team}", label=f"{label} ({target.services})", urls=tuple(target.url_list))


def _claim(task_ids: list[int], *, now: dt.datetime) -> list[int]:
    """The tasks of `task_ids` this worker may alert now (not alerted, no lease or retry pending)."""
    claimed = []
    for task_id in task_ids:
        if (
            FollowUpTask.objects.filter(pk=task_id, alerted_at__isnull=True)
            .filter(Q(alert_retry_at__isnull=True) | Q(alert_retry_at__lte=now))
            .update(alert_retry_at=now + SEND_LEASE)
        ):
            claimed.append(task_id)
    return claimed


def _record_success(task_ids: list[int], *, now: dt.datetime) -> None:
    FollowUpTask.objects.filter(pk__in=task_ids).update(alerted_at=now, alert_retry_at=None, alert_error="")


def _record_failure(task_ids: list[int], *, error: str, now: dt.datetime) -> None:
    for task in FollowUpTask.objects.filter(pk__in=task_ids):
        delay = RETRY_DELAYS[min(task.alert_attempts, len(RETRY_DELAYS) - 1)]
        FollowUpTask.objects.filter(pk=task.pk).update(alert_attempts=F("alert_attempts") + 1, alert_retry_at=now + delay, alert_error=error[:500])
        if task.alert_attempts + 1 == ALERT_SUPERVISOR_AFTER:
            alert_raise(
                campaign=None,
                source="owner-alerts",
                level=Alert.Level.WARNING,
                message=f"Owner alerts keep failing ({error[:200]}); the tasks stay open and the alerts are retried.",
            )


def _deliver(*, destination: Destination, title: str, body: str, tag: str, task_ids: list[int], now: dt.datetime, report: AlertReport) -> None:
    try:
        notify.notify_send(urls=destination.urls, title=title, body=body, destination=destination.label, tag=tag)
    except IntegrationError as exc:
        log.warning("owner alert failed", extra={"destination": destination.key, "tasks": len(task_ids), "error": exc.message})
        _record_failure(task_ids, error=exc.message, now=now)
        report.failed += len(task_ids)
        report.errors.append(exc.message)
        return
    _record_success(task_ids, now=now)
    report.sent += len(task_ids)
    report.messages += 1


def follow_up_tasks_route_pending(*, now: dt.datetime, report: AlertReport | None = None) -> AlertReport:
    report = report or AlertReport()
    for task in FollowUpTask.objects.filter(routed_at__isnull=True).exclude(status=FollowUpTask.Status.DONE).order_by("created_at")[:SWEEP_BATCH]:
        report.routed += follow_up_task_route(task=task, now=now)
    return report


def owner_alert_send(*, task_id: int, now: dt.datetime) -> AlertReport:
    """Route one task if it is not yet, and alert its owner at once if its kind asks for that."""
    report = AlertReport()
    task = FollowUpTask.objects.select_related("owner").filter(pk=task_id).first()
    if task is None:
        return report
    if task.routed_at is None:
        report.routed += follow_up_task_route(task=task, now=now)
    if task.alert_mode != FollowUpTask.AlertMode.IMMEDIATE or task.alerted_at is not None or not _claim([task.pk], now=now):
        return report
    title, body = immediate_message(task, first_name=first_names([task]).get(task.client_id, ""))
    _deliver(destination=destination_for(task), title=title, body=body, tag="immediate", task_ids=[task.pk], now=now, report=report)
    return report


def owner_alerts_sweep(*, now: dt.datetime) -> AlertReport:
    """Every minute: route new tasks, and send the at-once alerts that are due (new ones a
    worker missed, and failed ones whose retry time came)."""
    report = follow_up_tasks_route_pending(now=now)
    due = (
        FollowUpTask.objects.filter(alerted_at__isnull=True, alert_mode=FollowUpTask.AlertMode.IMMEDIATE)
        .filter(Q(alert_retry_at__isnull=True) | Q(alert_retry_at__lte=now))
        .exclude(status=FollowUpTask.Status.DONE)
        .order_by("created_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for task_id in list(due):
        one = owner_alert_send(task_id=task_id, now=now)
        report.sent += one.sent
        report.failed += one.failed
        report.messages += one.messages
        report.errors += one.errors
    return report


def owner_alerts_digest(*, now: dt.datetime) -> AlertReport:
    """Hourly: one message per destination listing its open tasks not alerted yet (the digest
    kinds, and at-once alerts that failed), each task once."""
    report = follow_up_tasks_route_pending(now=now)
    pending = (
        FollowUpTask.objects.select_related("owner")
        .filter(alerted_at__isnull=True, routed_at__isnull=False)
        .filter(Q(alert_mode=FollowUpTask.AlertMode.DIGEST) | Q(alert_attempts__gt=0))
        .filter(Q(alert_retry_at__isnull=True) | Q(alert_retry_at__lte=now))
        .exclude(status=FollowUpTask.Status.DONE)
        .order_by("created_at")
    )
    groups: dict[str, tuple[Destination, list[FollowUpTask]]] = {}
    by_key: dict[str, list[FollowUpTask]] = defaultdict(list)
    for task in pending:
        destination = destination_for(task)
        groups.setdefault(destination.key, (destination, by_key[destination.key]))
        by_key[destination.key].append(task)
    for destination, tasks in groups.values():
        claimed = set(_claim([t.pk for t in tasks], now=now))
        tasks = [t for t in tasks if t.pk in claimed]
        if not tasks:
            continue
        title, body = digest_message(tasks, names=first_names(tasks))
        _deliver(destination=destination, title=title, body=body, tag="digest", task_ids=[t.pk for t in tasks], now=now, report=report)
    return report
