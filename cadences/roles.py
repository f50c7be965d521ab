"""The two staff roles and what each may do in the admin.

- **Billing managers** edit cadences, templates and settings (add/change/delete/view on every
  cadences model), set up the partners' SFTP intake and delivery folders, and see campaigns (view).
- **Supervisors** watch and control campaigns (view + change on campaigns, queue items, follow-up
  tasks, promises to pay, suppressions and alerts; view on the rest) and see cadences read-only.

A data migration creates the groups; `roles_install` runs again after every `migrate` so models
added later get their baseline permissions too. It only ever adds permissions: extra ones given
in the admin stay, but a baseline permission taken away comes back at the next migrate.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q

BILLING_MANAGERS = "Billing managers"
SUPERVISORS = "Supervisors"

# Campaign models supervisors may change (stop a campaign, skip an item, work a follow-up task…).
SUPERVISOR_CONTROLLED = frozenset({"campaign", "queueitem", "followuptask", "promisetopay", "suppression", "alert"})

# Campaign models billing managers set up (the partners' SFTP folders).
BILLING_MANAGED = frozenset({"sftpsource", "sftpdestination"})

_ROLE_APPS = ("cadences", "campaigns")


def _model_names(apps: Apps | Any, label: str) -> list[str]:
    try:
        app_config = apps.get_app_config(label)
    except LookupError:
        return []
    # History rows are read through their model's admin; they need no permissions of their own.
    names = (str(m._meta.model_name) for m in app_config.get_models())
    return [name for name in names if not name.startswith("historical")]


def role_permissions(apps: Apps | Any = global_apps) -> dict[str, set[tuple[str, str]]]:
    """Each role's permissions as (app_label, codename) pairs."""
    cadence_models = _model_names(apps, "cadences")
    campaign_models = _model_names(apps, "campaigns")
    billing = {("cadences", f"{action}_{m}") for m in cadence_models for action in ("add", "change", "delete", "view")}
    billing |= {("campaigns", f"view_{m}") for m in campaign_models}
    billing |= {("campaigns", f"{action}_{m}") for m in campaign_models if m in BILLING_MANAGED for action in ("add", "change", "delete")}
    supervisors = {("cadences", f"view_{m}") for m in cadence_models}
    supervisors |= {("campaigns", f"view_{m}") for m in campaign_models}
    supervisors |= {("campaigns", f"change_{m}") for m in campaign_models if m in SUPERVISOR_CONTROLLED}
    return {BILLING_MANAGERS: billing, SUPERVISORS: supervisors}


def roles_install(*, apps: Apps | Any = global_apps, using: str = DEFAULT_DB_ALIAS) -> None:
    """Create both groups and give them their baseline permissions (idempotent, add-only)."""
    # Permissions are normally created after migrate; a data migration must create them first.
    for label in _ROLE_APPS:
        try:
            create_permissions(global_apps.get_app_config(label), verbosity=0, apps=apps, using=using)
        except LookupError:
            continue
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, wanted in role_permissions(apps).items():
        group, _ = group_model.objects.using(using).get_or_create(name=name)
        match = Q(pk__in=[])
        for app_label, codename in wanted:
            match |= Q(content_type__app_label=app_label, codename=codename)
        group.permissions.add(*permission_model.objects.using(using).filter(match))
