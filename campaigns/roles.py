"""Who may watch and who may control campaigns, in Django permissions.

The roles are groups (see `cadences.roles`): "Supervisors" hold `change_campaign` and so may
start, pause and stop campaigns and work follow-up tasks; "Billing managers" hold the view
permissions and may read the dashboard, the KPIs, the timelines and the API. Checking the
permission rather than the group name means a permission granted in the admin works as expected.
"""

from __future__ import annotations

from typing import Any

VIEW_CAMPAIGNS = "campaigns.view_campaign"
CONTROL_CAMPAIGNS = "campaigns.change_campaign"
VIEW_QUEUE_ITEMS = "campaigns.view_queueitem"
VIEW_FOLLOW_UP_TASKS = "campaigns.view_followuptask"
CHANGE_FOLLOW_UP_TASKS = "campaigns.change_followuptask"
VIEW_KPIS = "campaigns.view_dailykpi"


def has(user: Any, permission: str) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.has_perm(permission))


def can_view_campaigns(user: Any) -> bool:
    return has(user, VIEW_CAMPAIGNS)


def can_control_campaigns(user: Any) -> bool:
    return has(user, CONTROL_CAMPAIGNS)


# The API reads what these allow; a role (Supervisors, Billing managers) holds at least one.
API_PERMISSIONS = (VIEW_CAMPAIGNS, VIEW_QUEUE_ITEMS, VIEW_FOLLOW_UP_TASKS, VIEW_KPIS)


def has_api_role(user: Any) -> bool:
    """Whether `user` may use the API at all (and so have a token): active staff in a role."""
    return bool(getattr(user, "is_staff", False)) and any(has(user, permission) for permission in API_PERMISSIONS)
