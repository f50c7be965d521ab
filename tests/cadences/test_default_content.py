"""The content a fresh database ships with (created by the data migration)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from cadences import defaults, templating
from cadences.models import (
    DEFAULT_QUEUE_SQL,
    RESURRECTION_PHASES,
    ActionType,
    CadenceStep,
    DialerSettings,
    Phase,
    Segment,
    SmsTemplate,
    StateCallLimit,
)

pytestmark = pytest.mark.django_db

EXPECTED_DAYS = {
    "RED Initial": (1, 60, 180),
    "RED Recurring": (1, 60, 180),
    "Reso Initial": (1, 90, 180),
    "Reso Recurring": (14, 90, 180),
    "Reso Servicing": (31, 122, 180),
}
BILLING_ORDER = [Phase.PAYMENT_MISSED, Phase.SOFT_INTRO, Phase.PAST_DUE, Phase.PRE_SUSPENSION]
RESURRECTION_ORDER = [Phase.SUSPENSION, Phase.RE_ENGAGEMENT, Phase.DIRECT, Phase.PRE_CANCELLATION, Phase.CANCELLATION]
PHASE_ORDER = BILLING_ORDER + RESURRECTION_ORDER


def steps_of(name: str) -> list[CadenceStep]:
    return list(CadenceStep.objects.filter(segment__name=name).select_related("sms_template", "segment").order_by("day"))


def test_five_segments_with_their_days() -> None:
    found = {s.name: (s.first_outreach_day, s.suspension_day, s.cancellation_day) for s in Segment.objects.all()}
    assert found == EXPECTED_DAYS


@pytest.mark.parametrize("name", EXPECTED_DAYS)
def test_each_segment_has_45_to_55_touchpoints_from_first_outreach_to_day_180(name: str) -> None:
    first, _suspension, cancellation = EXPECTED_DAYS[name]
    steps = steps_of(name)
    assert 45 <= len(steps) <= 55
    outreach = [s for s in steps if s.phase != Phase.PAYMENT_MISSED]
    assert outreach[0].day == first
    assert steps[-1].day == cancellation == 180
    # The only touchpoint before first outreach is the day-0 "payment missed" text, and only
    # for segments whose outreach starts on day 1.
    early = [s for s in steps if s.day < first]
    if first == 1:
        assert [(s.day, s.phase, s.action_type) for s in early] == [(0, Phase.PAYMENT_MISSED, ActionType.SMS)]
    else:
        assert early == []
    assert all(s.active for s in steps)


@pytest.mark.parametrize("name", EXPECTED_DAYS)
def test_phases_follow_the_lifecycle_and_shift_to_resurrection_on_the_suspension_day(name: str) -> None:
    segment = Segment.objects.get(name=name)
    steps = steps_of(name)
    order = [PHASE_ORDER.index(Phase(s.phase)) for s in steps]
    assert order == sorted(order), "phases must never go backwards"
    for step in steps:
        resurrection = step.phase in RESURRECTION_PHASES
        assert resurrection == (step.day >= segment.suspension_day), f"day {step.day} {step.phase}"
        routing = segment.routing(step.day)
        assert routing["team"] == ("resurrection" if resurrection else "billing")
    phases = {s.phase for s in steps}
    assert set(PHASE_ORDER) - {Phase.PAYMENT_MISSED} <= phases
    by_phase = {p: [s.day for s in steps if s.phase == p] for p in phases}
    assert by_phase[Phase.SUSPENSION] == [segment.suspension_day]
    assert by_phase[Phase.CANCELLATION] == [180]
    assert min(by_phase[Phase.PRE_SUSPENSION]) > max(by_phase[Phase.PAST_DUE])


@pytest.mark.parametrize("name", EXPECTED_DAYS)
def test_milestones_are_sms_and_call(name: str) -> None:
    segment = Segment.objects.get(name=name)
    steps = {s.day: s for s in steps_of(name)}
    first_past_due_phase_day = min(d for d, s in steps.items() if s.phase == Phase.PAST_DUE)
    pre_cancellation_start = min(d for d, s in steps.items() if s.phase == Phase.PRE_CANCELLATION)
    for day in (segment.first_outreach_day, first_past_due_phase_day, segment.suspension_day, pre_cancellation_start, 180):
        assert steps[day].action_type == ActionType.BOTH, f"day {day}"


def test_red_phase_boundaries_match_the_specification() -> None:
    spans = {s.phase: (s.first_day, s.last_day) for s in defaults.phase_spans(first_outreach_day=1, suspension_day=60, cancellation_day=180)}
    assert spans[Phase.PAYMENT_MISSED] == (0, 0)
    assert spans[Phase.SOFT_INTRO] == (1, 10)
    assert spans[Phase.PAST_DUE] == (12, 30)  # day 11 is a quiet day
    assert spans[Phase.PRE_SUSPENSION] == (31, 59)
    assert spans[Phase.SUSPENSION] == (60, 60)
    assert spans[Phase.RE_ENGAGEMENT][0] == 61
    assert spans[Phase.PRE_CANCELLATION] == (150, 179)
    assert spans[Phase.CANCELLATION] == (180, 180)
    red = {s.phase: [x.day for x in steps_of("RED Initial") if x.phase == s.phase] for s in defaults.phase_spans(first_outreach_day=1, suspension_day=60, cancellation_day=180)}
    for phase, days in red.items():
        first, last = spans[phase]
        assert all(first <= d <= last for d in days), phase
    assert 11 not in [s.day for s in steps_of("RED Initial")]


def test_other_segments_scale_their_phases_to_their_own_days() -> None:
    for name, (first, suspension, _c) in EXPECTED_DAYS.items():
        spans = {s.phase: s for s in defaults.phase_spans(first_outreach_day=first, suspension_day=suspension, cancellation_day=180)}
        assert spans[Phase.SOFT_INTRO].first_day == first
        assert spans[Phase.PRE_SUSPENSION].last_day == suspension - 1
        assert spans[Phase.RE_ENGAGEMENT].first_day == suspension + 1
        assert suspension < spans[Phase.DIRECT].first_day < spans[Phase.PRE_CANCELLATION].first_day < 180


def test_red_recurring_has_red_initials_cadence_shape() -> None:
    def shape(name: str) -> list[tuple[object, ...]]:
        return [(s.day, s.action_type, s.phase, s.sms_template_id, s.voicemail_prompt, s.live_call_prompt) for s in steps_of(name)]

    assert shape("RED Recurring") == shape("RED Initial")


def test_routing_is_complete_and_fictional() -> None:
    for segment in Segment.objects.all():
        for number in (segment.billing_transfer_number, segment.resurrection_transfer_number):
            assert re.fullmatch(r"\+1\d{3}55501\d{2}", number), number
        assert segment.billing_transfer_number != segment.resurrection_transfer_number
        assert segment.billing_ring_group.startswith("billing-")
        assert segment.resurrection_ring_group.startswith("resurrection-")
        assert segment.billing_inbox_id and segment.resurrection_inbox_id
        assert segment.billing_inbox_id != segment.resurrection_inbox_id


def test_every_step_passes_model_validation() -> None:
    for step in CadenceStep.objects.select_related("segment", "sms_template"):
        step.full_clean()
    for template in SmsTemplate.objects.all():
        template.full_clean()


def _templates_of(phase: Phase) -> list[str]:
    bodies = list(SmsTemplate.objects.filter(phase=phase).values_list("body", flat=True))
    assert bodies, f"no template for {phase}"
    return bodies


def test_every_template_validates_carries_opt_out_and_never_asks_for_card_details() -> None:
    for template in SmsTemplate.objects.all():
        assert templating.validate_template(template.body, phase=template.phase) == []
        assert templating.OPT_OUT_TEXT in template.body
        assert not re.search(r"card|cvv|security code|expir", template.body, re.IGNORECASE)


def test_templates_follow_the_tone_of_their_phase() -> None:
    for body in _templates_of(Phase.PAYMENT_MISSED) + _templates_of(Phase.SOFT_INTRO):
        assert "amount_due" not in body and "$" not in body
        assert "{{ payment_link }}" in body
    for body in _templates_of(Phase.PAST_DUE):
        assert "{{ amount_due }}" in body and "{{ payment_link }}" in body
    for body in _templates_of(Phase.PRE_SUSPENSION):
        assert "suspension" in body.lower() and "{{ payment_link }}" in body
    for body in _templates_of(Phase.RE_ENGAGEMENT) + _templates_of(Phase.DIRECT):
        assert "we're still here" in body.lower()
    for body in _templates_of(Phase.PRE_CANCELLATION):
        assert "cancel" in body.lower()
    for body in _templates_of(Phase.CANCELLATION):
        assert "final" in body.lower() and "cancelled" in body.lower()
    for body in _templates_of(Phase.SUSPENSION):
        assert "suspended" in body.lower()


def test_sms_steps_use_a_template_of_their_own_phase() -> None:
    for step in CadenceStep.objects.exclude(sms_template=None).select_related("sms_template"):
        assert step.sms_template.phase == step.phase


def test_rendered_templates_fit_in_two_gsm7_parts() -> None:
    context = templating.sample_context(company_name=DialerSettings.load().company_name, today=dt.date(2026, 3, 2))
    for template in SmsTemplate.objects.all():
        info = templating.sms_length_info(template.render(context))
        assert info["encoding"] == "GSM-7", template.name
        assert info["segments"] <= 2, template.name


def test_voicemail_prompts_are_limited_content() -> None:
    prompts = set(CadenceStep.objects.exclude(voicemail_prompt="").values_list("voicemail_prompt", flat=True))
    assert prompts
    for prompt in prompts:
        assert templating.validate_voicemail_prompt(prompt) == []
        assert not re.search(r"\$|\d|amount_due|debt|owe|balance|past due|overdue", prompt, re.IGNORECASE)
        assert "call us back" in prompt.lower() and "{{transfer_number}}" in prompt and "Grace" in prompt


def test_live_call_prompts_carry_the_rules_and_differ_by_phase() -> None:
    steps = CadenceStep.objects.exclude(live_call_prompt="")
    by_phase = {s.phase: s.live_call_prompt for s in steps}
    assert len(set(by_phase.values())) == len(by_phase), "each phase has its own live-call prompt"
    for phase, prompt in by_phase.items():
        lowered = prompt.lower()
        assert "verify" in lowered and "before you say anything about the account" in lowered
        assert "never take card or bank numbers" in lowered and "secure payment link" in lowered
        assert "warm transfer" in lowered and "promise to pay" in lowered
        assert "dispute" in lowered and "hardship" in lowered and "attorney" in lowered
    assert "do not cite the amount" in by_phase[Phase.SOFT_INTRO]
    # Amounts come from lookup_account once verified, never from a variable set before.
    assert all("{{amount_due}}" not in prompt for prompt in by_phase.values())
    assert "lookup_account" in by_phase[Phase.PAST_DUE] and all("verify_identity" in p for p in by_phase.values())
    assert "suspension" in by_phase[Phase.PRE_SUSPENSION]
    assert "still here" in by_phase[Phase.RE_ENGAGEMENT]
    assert "cancellation" in by_phase[Phase.PRE_CANCELLATION]


def test_settings_row_and_state_limit_ship() -> None:
    settings_row = DialerSettings.objects.get()
    assert settings_row.queue_sql == DEFAULT_QUEUE_SQL
    limit = StateCallLimit.objects.get(state="MA")
    assert (limit.max_calls, limit.period_days) == (2, 7)


def test_install_is_idempotent_and_restores_edits() -> None:
    template = SmsTemplate.objects.get(name="Soft intro - checking in")
    template.body = "Edited. Reply STOP to opt out."
    template.save()
    CadenceStep.objects.filter(segment__name="RED Initial", day=3).delete()
    before = CadenceStep.objects.count()
    counts = defaults.install_default_content(
        segment_model=Segment, step_model=CadenceStep, template_model=SmsTemplate,
        settings_model=DialerSettings, state_limit_model=StateCallLimit,
    )
    assert counts == {"segments": 5, "steps": before + 1, "templates": len(defaults.SMS_TEMPLATES)}
    assert SmsTemplate.objects.get(name="Soft intro - checking in").body == defaults.SMS_TEMPLATES["Soft intro - checking in"][1]
    assert CadenceStep.objects.filter(segment__name="RED Initial", day=3).exists()
    assert DialerSettings.objects.count() == 1 and StateCallLimit.objects.count() == 1
