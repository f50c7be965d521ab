from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate

from cadences.roles import roles_install


def _roles_after_migrate(sender: AppConfig, *, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    # `migrate` passes the migrated state as `apps`. `flush` (run between transactional tests)
    # passes none; the groups are recreated from the live registry so the next test has its roles,
    # as Django recreates content types and permissions.
    roles_install(apps=kwargs.get("apps") or global_apps, using=using)


class CadencesConfig(AppConfig):
    name = "cadences"
    verbose_name = "Cadences"

    def ready(self) -> None:
        # Models other apps add after the roles migration get their baseline permissions too.
        post_migrate.connect(_roles_after_migrate, sender=self, dispatch_uid="cadences-roles")
