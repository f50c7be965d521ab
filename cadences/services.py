"""Cadences as reviewable data: export every segment with its steps as JSON, import it back.

The format is a list of segments, in the admin's order:

    [{"name", "first_outreach_day", "suspension_day", "cancellation_day",
      "billing_transfer_number", "resurrection_transfer_number", "billing_ring_group",
      "resurrection_ring_group", "billing_inbox_id", "resurrection_inbox_id",
      "steps": [{"day", "action_type", "phase", "sms_template", "voicemail_prompt",
                 "live_call_prompt", "active"}, ...]}, ...]

`sms_template` is the template's text (null for call-only steps). The routing keys and `active`
are optional on import: a missing routing key keeps the segment's current value (a new segment
needs them all), a missing `active` means active.

Import is all or nothing: everything is validated first and every problem is reported (which
segment, which day, what is wrong); nothing is written unless there are none. A template text
that matches an existing template reuses it; a new text becomes a new template. Segments absent
from the file are left alone; steps of an imported segment on days absent from the file are
deleted. Rows are saved only when something changed, so a re-import adds no history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, ProtectedError

from cadences import defaults
from cadences.models import (
    MAX_CADENCE_DAY,
    ActionType,
    CadenceStep,
    DialerSettings,
    Phase,
    Segment,
    SmsTemplate,
    StateCallLimit,
    step_problems,
)

log = logging.getLogger(__name__)

SEGMENT_DAY_KEYS = ("first_outreach_day", "suspension_day", "cancellation_day")
ROUTING_KEYS = (
    "billing_transfer_number",
    "resurrection_transfer_number",
    "billing_ring_group",
    "resurrection_ring_group",
    "billing_inbox_id",
    "resurrection_inbox_id",
)
STEP_KEYS = ("day", "action_type", "phase", "sms_template", "voicemail_prompt", "live_call_prompt")
OPTIONAL_STEP_KEYS = ("active",)


class CadenceImportError(Exception):
    """The file was refused; `problems` lists every reason, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was imported.")
        self.problems = problems


@dataclass
class ImportSummary:
    segments_created: int = 0
    segments_updated: int = 0
    steps_created: int = 0
    steps_updated: int = 0
    steps_deleted: int = 0
    steps_unchanged: int = 0
    templates_created: list[str] = field(default_factory=list)


def cadences_export() -> list[dict[str, Any]]:
    """Every segment with its steps, segments in the admin's order and steps by day."""
    steps_by_segment: dict[int, list[CadenceStep]] = {}
    for step in CadenceStep.objects.select_related("sms_template").order_by("segment_id", "day"):
        steps_by_segment.setdefault(step.segment_id, []).append(step)
    return [
        {
            "name": segment.name,
            **{key: getattr(segment, key) for key in SEGMENT_DAY_KEYS},
            **{key: getattr(segment, key) for key in ROUTING_KEYS},
            "steps": [
                {
                    "day": step.day,
                    "action_type": step.action_type,
                    "phase": step.phase,
                    "sms_template": step.sms_template.body if step.sms_template else None,
                    "voicemail_prompt": step.voicemail_prompt,
                    "live_call_prompt": step.live_call_prompt,
                    "active": step.active,
                }
                for step in steps_by_segment.get(segment.pk, [])
            ],
        }
        for segment in Segment.objects.order_by("sort_order", "name")
    ]


@dataclass
class _PlannedStep:
    day: int
    action_type: str
    phase: str
    template: SmsTemplate | None  # unsaved when the text is new
    voicemail_prompt: str
    live_call_prompt: str
    active: bool


@dataclass
class _PlannedSegment:
    segment: Segment  # unsaved changes applied, pk set when it exists
    steps: list[_PlannedStep]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Validator:
    """Reads the payload into planned rows, collecting every problem instead of stopping at one."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.existing_segments = {s.name: s for s in Segment.objects.all()}
        self.templates_by_text: dict[str, list[SmsTemplate]] = {}
        for template in SmsTemplate.objects.order_by("name"):
            self.templates_by_text.setdefault(template.body, []).append(template)

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def template_for(self, text: str, phase: str) -> SmsTemplate:
        """The existing template with this text (preferring one written for the phase), or an unsaved new one."""
        candidates = self.templates_by_text.get(text, [])
        for template in candidates:
            if template.phase == phase:
                return template
        if candidates:
            return candidates[0]
        new = SmsTemplate(phase=phase, body=text)  # named when saved
        self.templates_by_text[text] = [new]  # later steps with the same text share it
        return new

    def read(self, payload: Any) -> list[_PlannedSegment]:
        if not isinstance(payload, list):
            self.problem("file", "expected a JSON list of segments.")
            return []
        planned: list[_PlannedSegment] = []
        seen: set[str] = set()
        for index, entry in enumerate(payload, start=1):
            where = f"segment #{index}"
            if not isinstance(entry, dict):
                self.problem(where, "expected an object.")
                continue
            name = entry.get("name")
            if not isinstance(name, str) or not name.strip():
                self.problem(where, "'name' must be a non-empty string.")
                continue
            where = f"segment '{name}'"
            if name in seen:
                self.problem(where, "appears more than once in the file.")
                continue
            seen.add(name)
            segment = self.read_segment(where, name, entry)
            if segment is None:
                continue
            steps = self.read_steps(where, segment, entry.get("steps"))
            planned.append(_PlannedSegment(segment=segment, steps=steps))
        return planned

    def read_segment(self, where: str, name: str, entry: dict[str, Any]) -> Segment | None:
        known = {"name", "steps", *SEGMENT_DAY_KEYS, *ROUTING_KEYS}
        for key in sorted(set(entry) - known):
            self.problem(where, f"unknown key '{key}'.")
        existing = self.existing_segments.get(name)
        # The instance read from the database is only ever changed in memory here.
        segment = existing or Segment(name=name)
        ok = True
        for key in SEGMENT_DAY_KEYS:
            value: Any = entry.get(key)
            if not _is_int(value) or not 0 <= value <= MAX_CADENCE_DAY:
                self.problem(where, f"'{key}' must be a whole number between 0 and {MAX_CADENCE_DAY} (got {value!r}).")
                ok = False
            else:
                setattr(segment, key, value)
        for key in ROUTING_KEYS:
            if key in entry:
                if not isinstance(entry[key], str) or not entry[key].strip():
                    self.problem(where, f"'{key}' must be a non-empty string.")
                    ok = False
                else:
                    setattr(segment, key, entry[key].strip())
            elif existing is None:
                self.problem(where, f"'{key}' is required for a new segment.")
                ok = False
        if not ok:
            return None
        try:
            segment.full_clean(exclude=["sort_order"], validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            for field_name, messages in exc.message_dict.items():
                for message in messages:
                    self.problem(where, f"{field_name}: {message}" if field_name != "__all__" else message)
            return None
        return segment

    def read_steps(self, where: str, segment: Segment, raw_steps: Any) -> list[_PlannedStep]:
        if not isinstance(raw_steps, list):
            self.problem(where, "'steps' must be a list.")
            return []
        steps: list[_PlannedStep] = []
        days: set[int] = set()
        for index, raw in enumerate(raw_steps, start=1):
            if not isinstance(raw, dict):
                self.problem(f"{where}, step #{index}", "expected an object.")
                continue
            day = raw.get("day")
            step_where = f"{where}, day {day}" if _is_int(day) else f"{where}, step #{index}"
            for key in sorted(set(raw) - set(STEP_KEYS) - set(OPTIONAL_STEP_KEYS)):
                self.problem(step_where, f"unknown key '{key}'.")
            for key in sorted(set(STEP_KEYS) - set(raw)):
                self.problem(step_where, f"missing key '{key}'.")
            step = self.read_step(step_where, segment, raw)
            if step is None:
                continue
            if step.day in days:
                self.problem(step_where, "more than one step on this day.")
                continue
            days.add(step.day)
            steps.append(step)
        return steps

    def read_step(self, where: str, segment: Segment, raw: dict[str, Any]) -> _PlannedStep | None:
        ok = True
        day: Any = raw.get("day")
        if not _is_int(day) or not 0 <= day <= MAX_CADENCE_DAY:
            self.problem(where, f"'day' must be a whole number between 0 and {MAX_CADENCE_DAY} (got {day!r}).")
            ok = False
        action_type: Any = raw.get("action_type")
        phase: Any = raw.get("phase")
        if action_type not in ActionType.values:
            self.problem(where, f"'action_type' must be one of {', '.join(ActionType.values)} (got {action_type!r}).")
            ok = False
        if phase not in Phase.values:
            self.problem(where, f"'phase' must be one of {', '.join(Phase.values)} (got {phase!r}).")
            ok = False
        text = raw.get("sms_template")
        if text is not None and not isinstance(text, str):
            self.problem(where, "'sms_template' must be the template's text or null.")
            ok = False
        prompts = {}
        for key in ("voicemail_prompt", "live_call_prompt"):
            value = raw.get(key) or ""
            if not isinstance(value, str):
                self.problem(where, f"'{key}' must be text.")
                ok = False
                value = ""
            prompts[key] = value
        active = raw.get("active", True)
        if not isinstance(active, bool):
            self.problem(where, "'active' must be true or false.")
            ok = False
        if not ok:
            return None
        template = self.template_for(text, phase) if text and text.strip() else None
        errors = step_problems(
            segment=segment,
            day=day,
            action_type=action_type,
            phase=phase,
            sms_template=template,
            voicemail_prompt=prompts["voicemail_prompt"],
            live_call_prompt=prompts["live_call_prompt"],
        )
        for field_name, messages in errors.items():
            for message in messages:
                self.problem(where, f"{field_name}: {message}")
        if errors:
            return None
        return _PlannedStep(
            day=day,
            action_type=action_type,
            phase=phase,
            template=template,
            voicemail_prompt=prompts["voicemail_prompt"],
            live_call_prompt=prompts["live_call_prompt"],
            active=active,
        )


def _new_template_name(phase: str, segment: Segment, day: int) -> str:
    base = f"{Phase(phase).label} - {segment.name} day {day}"
    name, n = base, 2
    while SmsTemplate.objects.filter(name=name).exists():
        name, n = f"{base} ({n})", n + 1
    return name


def _changed(instance: Any, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(instance, key) != value:
            setattr(instance, key, value)
            changed = True
    return changed


def cadences_import(*, payload: Any, dry_run: bool = False) -> ImportSummary:
    """Validate `payload` (the export format) completely, then apply it in one transaction.

    Raises CadenceImportError with every problem found; nothing is written in that case (nor
    with `dry_run`).
    """
    validator = _Validator()
    planned = validator.read(payload)
    if validator.problems:
        raise CadenceImportError(validator.problems)
    summary = ImportSummary()
    with transaction.atomic():
        _apply(planned, summary)
        if dry_run:
            transaction.set_rollback(True)
    log.info(
        "cadences imported",
        extra={
            "dry_run": dry_run,
            "segments_created": summary.segments_created,
            "segments_updated": summary.segments_updated,
            "steps_created": summary.steps_created,
            "steps_updated": summary.steps_updated,
            "steps_deleted": summary.steps_deleted,
            "templates_created": len(summary.templates_created),
        },
    )
    return summary


def _apply(planned: list[_PlannedSegment], summary: ImportSummary) -> None:
    next_sort_order = (Segment.objects.aggregate(m=Max("sort_order"))["m"] or 0) + 10
    protected: list[str] = []
    for plan in planned:
        segment = plan.segment
        if segment.pk is None:
            segment.sort_order = next_sort_order
            next_sort_order += 10
            segment.save()
            summary.segments_created += 1
        else:
            current = Segment.objects.get(pk=segment.pk)
            if _changed(current, {key: getattr(segment, key) for key in (*SEGMENT_DAY_KEYS, *ROUTING_KEYS)}):
                current.save()
                summary.segments_updated += 1

        existing = {step.day: step for step in CadenceStep.objects.filter(segment=segment)}
        wanted_days = {step.day for step in plan.steps}
        for day, old_step in sorted(existing.items()):
            if day in wanted_days:
                continue
            try:
                with transaction.atomic():
                    old_step.delete()
            except ProtectedError:
                protected.append(
                    f"segment '{segment.name}', day {day}: a campaign's queue still uses this step; "
                    "keep it in the file with \"active\": false instead of removing it."
                )
                continue
            summary.steps_deleted += 1

        for step_plan in plan.steps:
            template = step_plan.template
            if template is not None and template.pk is None:
                template.name = _new_template_name(template.phase, segment, step_plan.day)
                template.save()
                summary.templates_created.append(template.name)
            values = {
                "action_type": step_plan.action_type,
                "phase": step_plan.phase,
                "sms_template": template,
                "voicemail_prompt": step_plan.voicemail_prompt,
                "live_call_prompt": step_plan.live_call_prompt,
                "active": step_plan.active,
            }
            step = existing.get(step_plan.day)
            if step is None:
                CadenceStep.objects.create(segment=segment, day=step_plan.day, **values)
                summary.steps_created += 1
            elif _changed(step, values):
                step.save()
                summary.steps_updated += 1
            else:
                summary.steps_unchanged += 1
    if protected:
        # Raising inside the transaction rolls everything back.
        raise CadenceImportError(protected)


def cadences_reset_defaults() -> dict[str, int]:
    """Put the shipped segments, cadences, templates and MA limit back (staff edits to them are lost)."""
    with transaction.atomic():
        counts = defaults.install_default_content(
            segment_model=Segment,
            step_model=CadenceStep,
            template_model=SmsTemplate,
            settings_model=DialerSettings,
            state_limit_model=StateCallLimit,
        )
    log.info("default cadences restored", extra=counts)
    return counts
