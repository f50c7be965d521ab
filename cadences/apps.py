from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate

from cadences.roles import roles_install


def _roles_after_migrate(sender: AppConfig, *, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    # Only after `migrate`, which passes the migrated state as `apps`. `flush` (run between
    # transactional tests) sends post_migrate without it: the groups then go with the rest of the
    # migrations' data, and a test restoring that data (serialized_rollback) restores them too
    # instead of colliding with freshly recreated ones.
    apps = kwargs.get("apps")
    if apps is not None:
        roles_install(apps=apps, using=using)


class CadencesConfig(AppConfig):
    name = "cadences"
    verbose_name = "Cadences"

    def ready(self) -> None:
        # Models other apps add after the roles migration get their baseline permissions too.
        post_migrate.connect(_roles_after_migrate, sender=self, dispatch_uid="cadences-roles")
