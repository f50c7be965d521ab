"""Cadences as reviewable data: export_cadences → import_cadences, all or nothing."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cadences.models import CadenceStep, Segment, SmsTemplate
from cadences.services import CadenceImportError, cadences_import
from campaigns.models import Campaign, QueueItem

pytestmark = pytest.mark.django_db

STEP_KEYS = ["day", "action_type", "phase", "sms_template", "voicemail_prompt", "live_call_prompt", "active"]


def export_text() -> str:
    out = io.StringIO()
    call_command("export_cadences", stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, Any]:
    """Everything the cadences hold, keyed by natural keys rather than primary keys."""
    segments = {
        s["name"]: {k: v for k, v in s.items() if k not in ("id", "sort_order")}
        for s in Segment.objects.values()
    }
    steps = sorted(
        (s.segment.name, s.day, s.action_type, s.phase, s.sms_template.body if s.sms_template else None,
         s.voicemail_prompt, s.live_call_prompt, s.active)
        for s in CadenceStep.objects.select_related("segment", "sms_template")
    )
    templates = sorted(SmsTemplate.objects.values_list("name", "phase", "body"))
    return {"segments": segments, "steps": steps, "templates": templates}


def write(tmp_path: Path, payload: Any) -> str:
    path = tmp_path / "cadences.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return str(path)


def import_file(path: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_cadences", path, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_export_lists_every_segment_with_its_steps_in_a_stable_order() -> None:
    data = json.loads(export_text())
    assert [s["name"] for s in data] == ["RED Initial", "RED Recurring", "Reso Initial", "Reso Recurring", "Reso Servicing"]
    for segment in data:
        assert list(segment)[:4] == ["name", "first_outreach_day", "suspension_day", "cancellation_day"]
        assert list(segment)[-1] == "steps"
        days = [step["day"] for step in segment["steps"]]
        assert days == sorted(days) and len(days) == Segment.objects.get(name=segment["name"]).steps.count()
        for step in segment["steps"]:
            assert list(step) == STEP_KEYS
            if step["action_type"] == "CALL":
                assert step["sms_template"] is None
            else:
                assert "{{ first_name }}" in step["sms_template"]  # the text, not a name or an id
    assert export_text() == export_text()


def test_export_then_import_leaves_the_database_equal(tmp_path: Path) -> None:
    before = snapshot()
    history_before = CadenceStep.history.count() + SmsTemplate.history.count() + Segment.history.count()
    out, _ = import_file(write(tmp_path, json.loads(export_text())))
    assert "0 segment(s) created, 0 updated; 0 step(s) created, 0 updated, 0 deleted, 248 unchanged; 0 new template(s)" in out
    assert snapshot() == before
    # Nothing was saved, so nothing was added to the history either.
    assert CadenceStep.history.count() + SmsTemplate.history.count() + Segment.history.count() == history_before


def test_import_into_an_empty_database_recreates_the_same_cadences(tmp_path: Path) -> None:
    exported = export_text()
    path = tmp_path / "cadences.json"
    path.write_text(exported, encoding="utf-8")
    steps_before = snapshot()["steps"]
    CadenceStep.objects.all().delete()
    Segment.objects.all().delete()
    SmsTemplate.objects.all().delete()
    out, _ = import_file(str(path))
    assert "5 segment(s) created" in out and "248 step(s) created" in out
    assert snapshot()["steps"] == steps_before
    assert export_text() == exported


def test_import_applies_edits_and_reuses_or_creates_templates(tmp_path: Path) -> None:
    data = json.loads(export_text())
    red = data[0]
    red["steps"] = [s for s in red["steps"] if s["day"] != 3]  # removed
    red["steps"][1]["active"] = False  # day 1 paused
    new_text = "Hi {{ first_name }}, a gentle nudge: {{ payment_link }} Reply STOP to opt out."
    day5 = next(s for s in red["steps"] if s["day"] == 5)
    day5["sms_template"] = new_text
    day7 = next(s for s in red["steps"] if s["day"] == 7)
    day7["action_type"] = "BOTH"
    day7["sms_template"] = new_text  # the same new text: one new template for both
    red["billing_ring_group"] = "billing-red-east"
    out, _ = import_file(write(tmp_path, data))
    assert "1 new template(s)" in out
    segment = Segment.objects.get(name="RED Initial")
    assert segment.billing_ring_group == "billing-red-east"
    assert not segment.steps.filter(day=3).exists()
    assert segment.steps.get(day=1).active is False
    new = SmsTemplate.objects.get(body=new_text)
    assert new.name == "Soft intro - RED Initial day 5" and new.phase == "soft_intro"
    assert segment.steps.get(day=5).sms_template == new == segment.steps.get(day=7).sms_template
    assert segment.steps.get(day=7).action_type == "BOTH"
    assert Segment.objects.get(name="RED Recurring").steps.filter(day=3).exists()  # other segments untouched


def test_import_creates_a_new_segment(tmp_path: Path) -> None:
    data = json.loads(export_text())
    extra = copy.deepcopy(data[0])
    extra["name"] = "RED Pilot"
    out, _ = import_file(write(tmp_path, [extra]))
    assert "1 segment(s) created" in out
    pilot = Segment.objects.get(name="RED Pilot")
    assert pilot.steps.count() == 50 and pilot.sort_order > Segment.objects.get(name="Reso Servicing").sort_order
    assert Segment.objects.count() == 6


def test_a_suspension_day_change_must_move_the_phases_with_it(tmp_path: Path) -> None:
    data = json.loads(export_text())
    data[0]["suspension_day"] = 62
    with pytest.raises(CadenceImportError) as excinfo:
        cadences_import(payload=data)
    assert "segment 'RED Initial', day 60: phase: The suspension-day phase belongs on day 62." in excinfo.value.problems
    assert Segment.objects.get(name="RED Initial").suspension_day == 60


def test_every_problem_is_reported_and_nothing_is_written(tmp_path: Path) -> None:
    before = snapshot()
    data = json.loads(export_text())
    data[0]["steps"][1]["sms_template"] = "Hi {{ nick }}, {{ amount_due }} now. Reply STOP to opt out."  # day 1, soft intro
    data[0]["billing_ring_group"] = "billing-red-east"  # a valid change that must not be applied either
    data[1]["steps"][5]["phase"] = "re_engagement"  # RED Recurring day 9 is before suspension
    data[2]["steps"][2]["action_type"] = "FAX"
    data[3]["steps"][0]["voicemail_prompt"] = "About the debt you owe."
    data[3]["steps"][1]["live_call_prompt"] = ""  # a call step needs one
    data[4]["cancellation_day"] = 170  # Reso Servicing's day-180 step is now past it
    data[4]["steps"].append({**data[4]["steps"][0]})  # day 31 twice
    data[4]["colour"] = "red"
    with pytest.raises(CommandError, match=r"problem\(s\); nothing was imported"):
        import_file(write(tmp_path, data))
    with pytest.raises(CadenceImportError) as excinfo:
        cadences_import(payload=data)
    problems = excinfo.value.problems
    expected = [
        "segment 'RED Initial', day 1: sms_template: The SMS text does not suit a soft intro step: Unknown variable 'nick'.",
        "segment 'RED Initial', day 1: sms_template: The SMS text does not suit a soft intro step: A soft-intro or payment-missed text must not cite the amount",
        "segment 'RED Recurring', day 9: phase: Re-engagement is a resurrection phase but day 9 is before suspension (day 60).",
        "segment 'Reso Initial', day 4: 'action_type' must be one of SMS, CALL, BOTH (got 'FAX').",
        "segment 'Reso Recurring', day 14: voicemail_prompt: A voicemail must be limited-content",
        "segment 'Reso Recurring', day 16: live_call_prompt: Required for call steps.",
        "segment 'Reso Servicing', day 180: day: Day 180 is after Reso Servicing's cancellation day (170).",
        "segment 'Reso Servicing', day 31: more than one step on this day.",
        "segment 'Reso Servicing': unknown key 'colour'.",
    ]
    for fragment in expected:
        assert any(p.startswith(fragment) for p in problems), (fragment, problems)
    assert snapshot() == before


def test_structural_problems_are_reported(tmp_path: Path) -> None:
    with pytest.raises(CadenceImportError) as excinfo:
        cadences_import(payload={"name": "not a list"})
    assert excinfo.value.problems == ["file: expected a JSON list of segments."]
    with pytest.raises(CadenceImportError) as excinfo:
        cadences_import(payload=[{"name": "New One", "first_outreach_day": 1, "suspension_day": 60, "cancellation_day": 180, "steps": [{"day": 5}]}])
    problems = excinfo.value.problems
    assert "segment 'New One': 'billing_transfer_number' is required for a new segment." in problems
    assert not Segment.objects.filter(name="New One").exists()


def test_the_command_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Cannot read"):
        import_file(str(tmp_path / "missing.json"))
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    with pytest.raises(CommandError, match="is not valid JSON"):
        import_file(str(broken))


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    data = json.loads(export_text())
    data[0]["billing_ring_group"] = "billing-red-east"
    out, _ = import_file(write(tmp_path, data), "--dry-run")
    assert out.startswith("Would import: 0 segment(s) created, 1 updated")
    assert Segment.objects.get(name="RED Initial").billing_ring_group == "billing-red"


def test_removing_a_step_todays_queue_uses_is_refused(tmp_path: Path) -> None:
    step = CadenceStep.objects.get(segment__name="RED Initial", day=20)
    campaign = Campaign.objects.create(date=dt.date(2026, 3, 2))
    QueueItem.objects.create(
        campaign=campaign, client_id="C1", client_name="Jordan Avery", phone="+12125550147", segment=step.segment,
        step=step, days_past_due=20, phase=step.phase, action_type=step.action_type, ring_group="billing-red",
        transfer_number=step.segment.billing_transfer_number, inbox_id="41010", timezones="America/New_York",
    )
    before = snapshot()
    data = json.loads(export_text())
    data[0]["steps"] = [s for s in data[0]["steps"] if s["day"] != 20]
    data[0]["billing_ring_group"] = "billing-red-east"
    with pytest.raises(CadenceImportError) as excinfo:
        cadences_import(payload=data)
    assert excinfo.value.problems == [
        "segment 'RED Initial', day 20: a campaign's queue still uses this step; "
        'keep it in the file with "active": false instead of removing it.'
    ]
    assert snapshot() == before
