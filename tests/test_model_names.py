"""Every model names itself in words a person writes, singular and plural (the admin shows both)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

PROJECT_APPS = ("access", "cadences", "campaigns", "sandbox")


def _project_models() -> list[type]:
    return [model for model in apps.get_models() if model._meta.app_label in PROJECT_APPS and not model.__name__.startswith("Historical")]


@pytest.mark.parametrize("model", _project_models(), ids=lambda model: model.__name__)
def test_every_model_declares_its_names(model: type) -> None:
    declared = model._meta.original_attrs
    assert "verbose_name" in declared and "verbose_name_plural" in declared, model


@pytest.mark.django_db
def test_the_admin_index_shows_proper_plurals(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:index")).content.decode()
    for name in ("Release batches", "Simulated deliveries", "SMS templates", "Follow-up tasks", "SMS messages", "Contact ledger entries"):
        assert f">{name}<" in page, name
    for wrong in ("Release batchs", "Simulated deliverys", "Sms templates", "Follow up tasks"):
        assert wrong not in page
