from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from cadences.roles import roles_install


def _roles_after_migrate(sender: AppConfig, *, apps: Any, using: str, **kwargs: Any) -> None:
    roles_install(apps=apps, using=using)


class CadencesConfig(AppConfig):
    name = "cadences"
    verbose_name = "Cadences"

    def ready(self) -> None:
        # Models other apps add after the roles migration get their baseline permissions too.
        post_migrate.connect(_roles_after_migrate, sender=self, dispatch_uid="cadences-roles")
