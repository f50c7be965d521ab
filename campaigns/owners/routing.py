"""The routing rules that give a follow-up task its owner (all set in the admin).

In order, the first that applies names the owner:

1. the account's owner, when the warehouse names one and a portal user has that username or
   e-mail (the name is kept on the task either way);
2. the segment's senior owner, when the client owes the segment's high-value amount or more;
3. the senior owner of the client's tier;
4. nobody: the task waits in the team queue of the client's phase (billing before suspension,
   resurrection from it on), which is already the task's team.

A task a supervisor has given an owner keeps that owner.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from campaigns.models import ALERT_AT_ONCE, Account, FollowUpTask, TierOwner


@dataclass(frozen=True)
class Route:
    owner: Any  # a portal user, or None for the team queue
    owner_name: str
    routed_by: str


def portal_user_named(name: str) -> Any:
    """The active portal user whose username or e-mail is `name` (ignoring case), if exactly one."""
    if not name.strip():
        return None
    users = list(get_user_model().objects.filter(Q(username__iexact=name.strip()) | Q(email__iexact=name.strip()), is_active=True)[:2])
    return users[0] if len(users) == 1 else None


def route_for(*, account: Account | None) -> Route:
    """Pure of the task: the owner the rules give a task about `account`."""
    if account is None:
        return Route(owner=None, owner_name="", routed_by=FollowUpTask.RoutedBy.TEAM)
    owner_name = account.owner.strip()
    named = portal_user_named(owner_name)
    if named is not None:
        return Route(owner=named, owner_name=owner_name, routed_by=FollowUpTask.RoutedBy.ACCOUNT_OWNER)
    segment = account.segment
    if segment is not None and segment.senior_owner_id is not None and segment.is_high_value(account.amount_due):
        return Route(owner=segment.senior_owner, owner_name=owner_name, routed_by=FollowUpTask.RoutedBy.AMOUNT)
    if account.tier.strip():
        tier_owner = TierOwner.objects.select_related("owner").filter(tier__iexact=account.tier.strip()).first()
        if tier_owner is not None:
            return Route(owner=tier_owner.owner, owner_name=owner_name, routed_by=FollowUpTask.RoutedBy.TIER)
    return Route(owner=None, owner_name=owner_name, routed_by=FollowUpTask.RoutedBy.TEAM)


def follow_up_task_route(*, task: FollowUpTask, now: dt.datetime) -> bool:
    """Apply the rules to a task not routed yet (once: a concurrent sweep routing the same task
    changes nothing). True when this call routed it."""
    account = (
        Account.objects.select_related("segment", "segment__senior_owner").filter(client_id=task.client_id).first()
        if task.client_id
        else None
    )
    route = route_for(account=account)
    fields: dict[str, Any] = {
        "owner_name": route.owner_name[:100],
        "routed_by": route.routed_by,
        "routed_at": now,
        "alert_mode": FollowUpTask.AlertMode.IMMEDIATE if task.kind in ALERT_AT_ONCE else FollowUpTask.AlertMode.DIGEST,
    }
    moved = FollowUpTask.objects.filter(pk=task.pk, routed_at__isnull=True).update(**fields)
    if moved and route.owner is not None:
        # Never over a supervisor's choice made meanwhile.
        FollowUpTask.objects.filter(pk=task.pk, owner__isnull=True).update(owner=route.owner)
    if moved:
        task.refresh_from_db()
    return bool(moved)
