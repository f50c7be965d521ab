"""reset_default_cadences puts the shipped content back, and only when asked to."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cadences import defaults
from cadences.models import CadenceStep, Segment, SmsTemplate

pytestmark = pytest.mark.django_db


def test_it_refuses_without_confirmation() -> None:
    SmsTemplate.objects.filter(name="Direct - let's talk").update(body="Edited. Reply STOP to opt out.")
    with pytest.raises(CommandError, match="--yes"):
        call_command("reset_default_cadences")
    assert SmsTemplate.objects.get(name="Direct - let's talk").body == "Edited. Reply STOP to opt out."


def test_it_restores_edited_and_deleted_content() -> None:
    SmsTemplate.objects.filter(name="Direct - let's talk").update(body="Edited. Reply STOP to opt out.")
    Segment.objects.filter(name="Reso Initial").update(billing_ring_group="somewhere-else")
    CadenceStep.objects.filter(segment__name="Reso Servicing", day__gte=150).delete()
    out = io.StringIO()
    call_command("reset_default_cadences", "--yes", stdout=out)
    assert "Restored 5 segments, 248 cadence steps" in out.getvalue()
    assert SmsTemplate.objects.get(name="Direct - let's talk").body == defaults.SMS_TEMPLATES["Direct - let's talk"][1]
    assert Segment.objects.get(name="Reso Initial").billing_ring_group == "billing-reso"
    assert CadenceStep.objects.filter(segment__name="Reso Servicing").count() == 49
    # Restored through the real models, so the history shows it.
    assert SmsTemplate.objects.get(name="Direct - let's talk").history.latest().history_type == "~"
