"""Follow-up tasks: the supervisor's actions on the human-owned queue."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet

from campaigns.models import FollowUpTask


def follow_up_tasks_assign(*, tasks: QuerySet[FollowUpTask], owner: Any) -> int:
    """Give open tasks an owner; tasks already done are left alone."""
    return tasks.exclude(status=FollowUpTask.Status.DONE).update(owner=owner)


def follow_up_tasks_start(*, tasks: QuerySet[FollowUpTask]) -> int:
    return tasks.filter(status=FollowUpTask.Status.OPEN).update(status=FollowUpTask.Status.IN_PROGRESS)


def follow_up_tasks_close(*, tasks: QuerySet[FollowUpTask], now: dt.datetime) -> int:
    return tasks.exclude(status=FollowUpTask.Status.DONE).update(status=FollowUpTask.Status.DONE, resolved_at=now)
