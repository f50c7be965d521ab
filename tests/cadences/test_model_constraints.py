"""Each database constraint of the cadences models refuses bad rows by itself (no form involved)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction

from cadences.models import (
    ActionType,
    CadenceStep,
    DialerSettings,
    Phase,
    Segment,
    SmsTemplate,
    StateCallLimit,
)

pytestmark = pytest.mark.django_db

SEGMENT_FIELDS = {
    "billing_transfer_number": "+12125550188",
    "resurrection_transfer_number": "+12125550199",
    "billing_ring_group": "billing-test",
    "resurrection_ring_group": "resurrection-test",
    "billing_inbox_id": "1",
    "resurrection_inbox_id": "2",
}


def make_segment(name: str = "Test Segment", first: int = 1, suspension: int = 60, cancellation: int = 180) -> Segment:
    return Segment.objects.create(
        name=name, first_outreach_day=first, suspension_day=suspension, cancellation_day=cancellation, **SEGMENT_FIELDS
    )


def template() -> SmsTemplate:
    return SmsTemplate.objects.get(name="Past due - holding things up")


def call_step(segment: Segment, day: int = 20, **fields: object) -> CadenceStep:
    values: dict[str, object] = {
        "action_type": ActionType.CALL,
        "phase": Phase.PAST_DUE,
        "voicemail_prompt": "Hi, this is Grace. Please call us back.",
        "live_call_prompt": "Verify identity first.",
    }
    values.update(fields)
    return CadenceStep.objects.create(segment=segment, day=day, **values)


def refused(action: Callable[[], object]) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        action()


def test_segment_days_in_order() -> None:
    refused(lambda: make_segment(first=60, suspension=60))
    refused(lambda: make_segment(first=1, suspension=180, cancellation=180))
    refused(lambda: make_segment(first=1, suspension=60, cancellation=181))
    make_segment(first=1, suspension=60, cancellation=180)


def test_segment_name_unique() -> None:
    make_segment("Twice")
    refused(lambda: make_segment("Twice"))


def test_one_step_per_segment_and_day() -> None:
    segment = make_segment()
    call_step(segment, day=20)
    refused(lambda: call_step(segment, day=20))


def test_step_day_within_lifecycle() -> None:
    segment = make_segment()
    step = call_step(segment, day=20)
    refused(lambda: CadenceStep.objects.filter(pk=step.pk).update(day=181))


def test_step_day_within_its_segments_cancellation_day() -> None:
    segment = make_segment(cancellation=170)
    refused(lambda: call_step(segment, day=171))
    step = call_step(segment, day=170)
    refused(lambda: CadenceStep.objects.filter(pk=step.pk).update(day=175))
    refused(lambda: CadenceStep.objects.filter(pk=step.pk).update(segment=make_segment("Shorter", cancellation=160)))
    if connection.vendor == "postgresql":
        # Lowering the segment's day below a step is checked at commit; made immediate here,
        # where the test's transaction never commits.
        with pytest.raises(IntegrityError), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            Segment.objects.filter(pk=segment.pk).update(cancellation_day=150)
    Segment.objects.filter(pk=segment.pk).update(cancellation_day=175)  # raising it is always fine


def test_call_and_both_steps_need_both_prompts() -> None:
    segment = make_segment()
    refused(lambda: call_step(segment, day=21, voicemail_prompt=""))
    refused(lambda: call_step(segment, day=22, live_call_prompt=""))
    refused(lambda: call_step(segment, day=23, action_type=ActionType.BOTH, sms_template=template(), voicemail_prompt=""))
    # An SMS step needs no prompts.
    CadenceStep.objects.create(segment=segment, day=24, action_type=ActionType.SMS, phase=Phase.PAST_DUE, sms_template=template())


def test_sms_and_both_steps_need_a_template() -> None:
    segment = make_segment()
    refused(lambda: CadenceStep.objects.create(segment=segment, day=25, action_type=ActionType.SMS, phase=Phase.PAST_DUE))
    refused(lambda: call_step(segment, day=26, action_type=ActionType.BOTH))


def test_sms_template_name_unique() -> None:
    refused(lambda: SmsTemplate.objects.create(name=template().name, phase=Phase.PAST_DUE, body="x Reply STOP to opt out."))


def test_state_call_limit_state_unique_and_period_positive() -> None:
    refused(lambda: StateCallLimit.objects.create(state="MA", max_calls=1, period_days=7))  # MA ships by default
    refused(lambda: StateCallLimit.objects.create(state="NY", max_calls=1, period_days=0))


def test_dialer_settings_is_one_row() -> None:
    assert DialerSettings.objects.count() == 1
    refused(lambda: DialerSettings.objects.create(queue_sql="SELECT 1"))
    refused(lambda: DialerSettings.objects.update(singleton_key=2))
    assert DialerSettings.load().pk == DialerSettings.objects.get().pk


def test_dialer_settings_calling_window_inside_legal_hours() -> None:
    refused(lambda: DialerSettings.objects.update(calling_window_start=dt.time(7, 30)))
    refused(lambda: DialerSettings.objects.update(calling_window_end=dt.time(21, 30)))
    refused(lambda: DialerSettings.objects.update(calling_window_start=dt.time(12, 0), calling_window_end=dt.time(11, 0)))
    DialerSettings.objects.update(calling_window_start=dt.time(9, 0), calling_window_end=dt.time(20, 0))


def test_dialer_settings_sms_window_ordered() -> None:
    refused(lambda: DialerSettings.objects.update(sms_window_start=dt.time(13, 0), sms_window_end=dt.time(10, 0)))


# Each constraint name must appear in one of the tests above (by the rows they refuse). New
# constraints added to the models fail this until they get a test.
TESTED_CONSTRAINTS = {
    "segment_days_in_order",
    "cadence_step_one_per_segment_day",
    "cadence_step_day_in_lifecycle",
    "cadence_step_call_needs_prompts",
    "cadence_step_sms_needs_template",
    "state_call_limit_period_positive",
    "dialer_settings_calling_window_legal",
    "dialer_settings_single_row",
    "dialer_settings_sms_window_ordered",
}


def test_every_constraint_has_a_test() -> None:
    declared = {
        constraint.name
        for model in (Segment, CadenceStep, SmsTemplate, StateCallLimit, DialerSettings)
        for constraint in model._meta.constraints
        if isinstance(constraint, (models.CheckConstraint, models.UniqueConstraint))
    }
    assert declared == TESTED_CONSTRAINTS


def test_clean_refuses_a_day_after_the_segments_cancellation_day() -> None:
    segment = make_segment(first=1, suspension=60, cancellation=150)
    step = CadenceStep(segment=segment, day=160, action_type=ActionType.CALL, phase=Phase.PRE_CANCELLATION,
                       voicemail_prompt="Hi, this is Grace. Please call us back.", live_call_prompt="Verify identity first.")
    with pytest.raises(ValidationError) as excinfo:
        step.full_clean()
    assert "after Test Segment's cancellation day (150)" in str(excinfo.value.message_dict["day"])


def test_clean_refuses_a_phase_on_the_wrong_side_of_suspension() -> None:
    segment = make_segment(first=1, suspension=60)
    early = CadenceStep(segment=segment, day=30, action_type=ActionType.SMS, phase=Phase.RE_ENGAGEMENT,
                        sms_template=SmsTemplate.objects.get(name="Re-engagement - still here"))
    late = CadenceStep(segment=segment, day=70, action_type=ActionType.SMS, phase=Phase.PAST_DUE, sms_template=template())
    with pytest.raises(ValidationError, match="before suspension"):
        early.full_clean()
    with pytest.raises(ValidationError, match="on or after suspension"):
        late.full_clean()


def test_clean_refuses_a_soft_intro_step_with_a_template_citing_the_amount() -> None:
    segment = make_segment()
    step = CadenceStep(segment=segment, day=3, action_type=ActionType.SMS, phase=Phase.SOFT_INTRO, sms_template=template())
    with pytest.raises(ValidationError) as excinfo:
        step.full_clean()
    assert "must not cite the amount" in str(excinfo.value.message_dict["sms_template"])


def test_clean_refuses_a_voicemail_naming_the_debt() -> None:
    segment = make_segment()
    step = call_step(segment, day=20)
    step.voicemail_prompt = "This is Grace about your overdue balance of $200."
    with pytest.raises(ValidationError) as excinfo:
        step.full_clean()
    message = str(excinfo.value.message_dict["voicemail_prompt"])
    assert "'overdue'" in message and "'balance'" in message and "'$'" in message


def test_segment_clean_explains_days_out_of_order() -> None:
    segment = Segment(name="Bad", first_outreach_day=90, suspension_day=60, cancellation_day=180, **SEGMENT_FIELDS)
    with pytest.raises(ValidationError) as excinfo:
        segment.full_clean()
    assert "must come before suspension (day 60)" in str(excinfo.value.message_dict["first_outreach_day"])


def test_transfer_numbers_must_be_e164() -> None:
    segment = Segment(name="Bad", first_outreach_day=1, suspension_day=60, cancellation_day=180,
                      **{**SEGMENT_FIELDS, "billing_transfer_number": "212-555-0188"})
    with pytest.raises(ValidationError) as excinfo:
        segment.full_clean()
    assert "billing_transfer_number" in excinfo.value.message_dict
