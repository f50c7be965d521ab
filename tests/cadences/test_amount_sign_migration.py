"""Templates that wrote their own $ before {{ amount_due }} lose it when the amount gains its sign."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from cadences.models import SmsTemplate

pytestmark = pytest.mark.django_db

migration = importlib.import_module("cadences.migrations.0014_amount_due_carries_its_sign")


def test_the_written_sign_is_dropped_and_written_back_on_reverse() -> None:
    template = SmsTemplate.objects.create(
        name="Written sign", phase="past_due", body="Pay $ {{ amount_due }} or ${{amount_due}}, {{ amount_due|raw }} dollars."
    )
    migration.drop_written_signs(apps, None)
    template.refresh_from_db()
    assert template.body == "Pay {{ amount_due }} or {{amount_due}}, {{ amount_due|raw }} dollars."
    migration.write_signs_back(apps, None)
    template.refresh_from_db()
    assert template.body == "Pay ${{ amount_due }} or ${{amount_due}}, {{ amount_due|raw }} dollars."


def test_no_shipped_template_writes_its_own_sign() -> None:
    assert not SmsTemplate.objects.filter(body__contains="${{").exists()
    assert SmsTemplate.objects.filter(body__contains="{{ amount_due }}").exists()
