from __future__ import annotations

from django.apps import AppConfig


class CadencesConfig(AppConfig):
    name = "cadences"
    verbose_name = "Cadences"
