"""Saving an admin page leaves a text nobody edited exactly as it was stored.

Browsers submit a textarea with CRLF line endings; the stored prompts have LF.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from cadences.forms import MultilineTextField
from cadences.models import ActionType, CadenceStep, Segment
from tests.cadences.admin_forms import change_form_data

pytestmark = pytest.mark.django_db


def _as_a_browser_submits(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value.replace("\n", "\r\n") if isinstance(value, str) else value for key, value in data.items()}


def _multiline_call_step() -> CadenceStep:
    step = CadenceStep.objects.filter(action_type=ActionType.CALL, live_call_prompt__contains="\n").order_by("pk").first()
    assert step is not None
    return step


def test_changing_only_a_steps_day_keeps_its_prompts_and_records_only_the_day(admin_client: Client) -> None:
    step = _multiline_call_step()
    before = (step.live_call_prompt, step.voicemail_prompt)
    taken = set(CadenceStep.objects.filter(segment=step.segment).values_list("day", flat=True))
    new_day = next(day for day in range(step.day + 1, 181) if day not in taken)
    url = reverse("admin:cadences_cadencestep_change", args=[step.pk])
    data = _as_a_browser_submits(change_form_data(admin_client, url))
    assert "\r\n" in data["live_call_prompt"]
    data["day"] = str(new_day)

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["errors"] if response.context else response
    step.refresh_from_db()
    assert step.day == new_day
    assert (step.live_call_prompt, step.voicemail_prompt) == before
    entry = LogEntry.objects.filter(object_id=str(step.pk)).latest("action_time")
    assert entry.get_change_message() == "Changed Day."


def test_saving_the_segment_page_unchanged_saves_no_step(admin_client: Client) -> None:
    segment = Segment.objects.get(name="RED Initial")
    step = CadenceStep.objects.filter(segment=segment, live_call_prompt__contains="\n").first()
    assert step is not None
    prompts = dict(segment.steps.values_list("pk", "live_call_prompt"))
    history = CadenceStep.history.count()
    url = reverse("admin:cadences_segment_change", args=[segment.pk])

    response = admin_client.post(url, _as_a_browser_submits(change_form_data(admin_client, url)))

    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert dict(segment.steps.values_list("pk", "live_call_prompt")) == prompts
    assert CadenceStep.history.count() == history
    assert LogEntry.objects.filter(object_id=str(segment.pk)).latest("action_time").get_change_message() == "No fields changed."


def test_a_typed_text_is_stored_with_lf_line_endings() -> None:
    field = MultilineTextField()
    assert field.clean("SELECT client_id\r\nFROM clients\rWHERE 1") == "SELECT client_id\nFROM clients\nWHERE 1"
    assert not field.has_changed("one\ntwo", "one\r\ntwo")
    assert field.has_changed("one\ntwo", "one\r\nthree")
