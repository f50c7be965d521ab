"""Segments, their 180-day cadences, SMS templates, and the run-time settings staff edit.

This app stands on Django alone: it knows nothing of campaigns. Campaigns read it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from cadences import calendar, templating

# The lifecycle never runs past day 180 (cancellation) for any segment.
MAX_CADENCE_DAY = 180

e164_validator = RegexValidator(r"^\+[1-9]\d{7,14}$", "Enter the number in E.164 form, e.g. +12125550110.")


class Phase(models.TextChoices):
    PAYMENT_MISSED = "payment_missed", "Payment missed"
    SOFT_INTRO = "soft_intro", "Soft intro"
    PAST_DUE = "past_due", "Past due"
    PRE_SUSPENSION = "pre_suspension", "Pre-suspension"
    SUSPENSION = "suspension", "Suspension day"
    RE_ENGAGEMENT = "re_engagement", "Re-engagement"
    DIRECT = "direct", "Direct"
    PRE_CANCELLATION = "pre_cancellation", "Pre-cancellation"
    CANCELLATION = "cancellation", "Cancellation day"


# From suspension on, tone, ring group, transfer number and SMS inbox switch to resurrection.
RESURRECTION_PHASES = frozenset(
    {Phase.SUSPENSION, Phase.RE_ENGAGEMENT, Phase.DIRECT, Phase.PRE_CANCELLATION, Phase.CANCELLATION}
)


class Team(models.TextChoices):
    """Who owns a client's touchpoints, replies and follow-ups: billing, or resurrection from suspension on."""

    BILLING = "billing", "Billing"
    RESURRECTION = "resurrection", "Resurrection"


def team_for_phase(phase: str) -> Team:
    return Team.RESURRECTION if phase in RESURRECTION_PHASES else Team.BILLING


class ActionType(models.TextChoices):
    SMS = "SMS", "SMS"
    CALL = "CALL", "Call"
    BOTH = "BOTH", "SMS and call"


class Segment(models.Model):
    name = models.CharField(max_length=64, unique=True, help_text="As the warehouse spells it, e.g. 'RED Initial'.")
    sort_order = models.PositiveSmallIntegerField(default=0)
    first_outreach_day = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(MAX_CADENCE_DAY)], help_text="First day past due with outreach (e.g. 14 for Reso Recurring)."
    )
    suspension_day = models.PositiveSmallIntegerField(validators=[MaxValueValidator(MAX_CADENCE_DAY)])
    cancellation_day = models.PositiveSmallIntegerField(validators=[MaxValueValidator(MAX_CADENCE_DAY)])
    billing_transfer_number = models.CharField(
        max_length=20, validators=[e164_validator], help_text="Talkdesk number for warm transfers before suspension (E.164)."
    )
    resurrection_transfer_number = models.CharField(
        max_length=20, validators=[e164_validator], help_text="Talkdesk number for warm transfers from suspension on (E.164)."
    )
    billing_ring_group = models.CharField(max_length=64)
    resurrection_ring_group = models.CharField(max_length=64)
    billing_inbox_id = models.CharField(max_length=64, help_text="HeyMarket inbox for billing-phase texts and replies.")
    resurrection_inbox_id = models.CharField(max_length=64, help_text="HeyMarket inbox for resurrection-phase texts and replies.")
    # High-value accounts: a person first. Above the threshold Grace offers the client a senior
    # person at once and never closes the call alone, and the follow-up tasks go to the senior owner.
    high_value_threshold = models.DecimalField(
        "high-value amount",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Clients owing this much or more are high-value: their calls are offered to a senior person and their "
        "follow-up tasks go to the senior owner. Empty: no client of this segment is high-value.",
    )
    senior_transfer_number = models.CharField(
        "senior ring group number",
        max_length=20,
        blank=True,
        validators=[e164_validator],
        help_text="Talkdesk number of the senior ring group that takes high-value calls (E.164). Empty: the segment's usual "
        "transfer number.",
    )
    senior_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who owns the follow-up tasks of this segment's high-value clients (and is alerted about them).",
    )
    verify_before_balance = models.BooleanField(
        "verify before disclosing the balance",
        default=True,
        help_text="Grace is given no amount when she dials; she verifies the client's identity, then looks the balance up.",
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = "segment"
        verbose_name_plural = "segments"
        ordering = ["sort_order", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(first_outreach_day__lt=models.F("suspension_day"))
                & Q(suspension_day__lt=models.F("cancellation_day"))
                & Q(cancellation_day__lte=MAX_CADENCE_DAY),
                name="segment_days_in_order",
                violation_error_message="Days must satisfy first outreach < suspension < cancellation ≤ 180.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        days = (self.first_outreach_day, self.suspension_day, self.cancellation_day)
        if None in days:
            return
        errors: dict[str, str] = {}
        if self.cancellation_day > MAX_CADENCE_DAY:
            errors["cancellation_day"] = f"The lifecycle ends at day {MAX_CADENCE_DAY}."
        if self.suspension_day >= self.cancellation_day:
            errors["suspension_day"] = f"Suspension (day {self.suspension_day}) must come before cancellation (day {self.cancellation_day})."
        if self.first_outreach_day >= self.suspension_day:
            errors["first_outreach_day"] = (
                f"First outreach (day {self.first_outreach_day}) must come before suspension (day {self.suspension_day})."
            )
        if errors:
            raise ValidationError(errors)

    def is_high_value(self, amount_due: Decimal | None) -> bool:
        return self.high_value_threshold is not None and amount_due is not None and amount_due >= self.high_value_threshold

    def is_resurrection_day(self, day: int) -> bool:
        return day >= self.suspension_day

    def routing(self, day: int) -> dict[str, str]:
        """Transfer number, ring group and inbox for a touchpoint on `day` past due."""
        if self.is_resurrection_day(day):
            return {
                "team": Team.RESURRECTION,
                "transfer_number": self.resurrection_transfer_number,
                "ring_group": self.resurrection_ring_group,
                "inbox_id": self.resurrection_inbox_id,
            }
        return {
            "team": Team.BILLING,
            "transfer_number": self.billing_transfer_number,
            "ring_group": self.billing_ring_group,
            "inbox_id": self.billing_inbox_id,
        }


class SmsTemplate(models.Model):
    name = models.CharField(max_length=120, unique=True)
    phase = models.CharField(max_length=32, choices=Phase.choices, help_text="The tone this text is written for.")
    body = models.TextField(
        help_text="Django template syntax. Variables: {{ client_name }}, {{ amount_due }}, {{ days_past_due }}, "
        "{{ payment_link }}, {{ suspension_date }}, {{ cancellation_date }}, {{ first_name }}, {{ company_name }}. "
        "{{ amount_due }} carries its currency sign (\"$249.00\"); {{ amount_due|raw }} gives the bare figure (\"249.00\")."
    )
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "SMS template"
        verbose_name_plural = "SMS templates"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = templating.validate_template(self.body, phase=self.phase)
        if not errors and self.pk is not None:
            # A text shared by steps of other phases must suit them too (no amount on a soft intro step).
            labels = dict(Phase.choices)
            for phase in sorted(set(self.steps.values_list("phase", flat=True)) - {self.phase}):
                for message in templating.validate_template(self.body, phase=phase):
                    errors.append(f"Used by a {str(labels.get(phase, phase)).lower()} step: {message}")
        if errors:
            raise ValidationError({"body": errors})

    def render(self, context: dict[str, Any]) -> str:
        return templating.render_template(self.body, context)


class CadenceStep(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="steps")
    day = models.PositiveSmallIntegerField(validators=[MaxValueValidator(MAX_CADENCE_DAY)], help_text="Days past due.")
    action_type = models.CharField(max_length=4, choices=ActionType.choices)
    phase = models.CharField(max_length=32, choices=Phase.choices)
    sms_template = models.ForeignKey(SmsTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="steps")
    voicemail_prompt = models.TextField(blank=True, help_text="What Grace says on voicemail. Name no debt and no amount.")
    live_call_prompt = models.TextField(blank=True, help_text="Grace's instructions when the client answers.")
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "cadence step"
        verbose_name_plural = "cadence steps"
        ordering = ["segment__sort_order", "day"]
        constraints = [
            models.UniqueConstraint(fields=["segment", "day"], name="cadence_step_one_per_segment_day"),
            models.CheckConstraint(
                condition=Q(day__gte=0) & Q(day__lte=MAX_CADENCE_DAY),
                name="cadence_step_day_in_lifecycle",
                violation_error_message="Day must be between 0 and 180.",
            ),
            models.CheckConstraint(
                condition=Q(action_type=ActionType.SMS) | (~Q(voicemail_prompt="") & ~Q(live_call_prompt="")),
                name="cadence_step_call_needs_prompts",
                violation_error_message="Call and SMS-and-call steps need a voicemail prompt and a live-call prompt.",
            ),
            models.CheckConstraint(
                condition=Q(action_type=ActionType.CALL) | Q(sms_template__isnull=False),
                name="cadence_step_sms_needs_template",
                violation_error_message="SMS and SMS-and-call steps need an SMS template.",
            ),
        ]
        indexes = [models.Index(fields=["segment", "day", "active"], name="cadence_step_lookup")]

    def __str__(self) -> str:
        return f"{self.segment} day {self.day} ({self.get_action_type_display()})"

    def clean(self) -> None:
        try:
            segment: Segment | None = self.segment
        except Segment.DoesNotExist:
            segment = None
        errors = step_problems(
            segment=segment,
            day=self.day,
            action_type=self.action_type,
            phase=self.phase,
            sms_template=self.sms_template if self.sms_template_id is not None else None,
            voicemail_prompt=self.voicemail_prompt,
            live_call_prompt=self.live_call_prompt,
        )
        if errors:
            raise ValidationError(errors)

    @property
    def is_resurrection(self) -> bool:
        return self.phase in RESURRECTION_PHASES

    @property
    def places_call(self) -> bool:
        return self.action_type in (ActionType.CALL, ActionType.BOTH)

    @property
    def sends_sms(self) -> bool:
        return self.action_type in (ActionType.SMS, ActionType.BOTH)


def step_problems(
    *,
    segment: Segment | None,
    day: int | None,
    action_type: str,
    phase: str,
    sms_template: SmsTemplate | None,
    voicemail_prompt: str,
    live_call_prompt: str,
) -> dict[str, list[str]]:
    """Everything wrong with a cadence step, by field; shared by the admin forms and the importer."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    label = dict(Phase.choices).get(phase, phase)
    if segment is not None and day is not None and day > segment.cancellation_day:
        add("day", f"Day {day} is after {segment}'s cancellation day ({segment.cancellation_day}).")
    if segment is not None and day is not None and phase in Phase.values:
        resurrection = phase in RESURRECTION_PHASES
        if resurrection and day < segment.suspension_day:
            add("phase", f"{label} is a resurrection phase but day {day} is before suspension (day {segment.suspension_day}).")
        if not resurrection and day >= segment.suspension_day:
            add("phase", f"{label} is a billing phase but day {day} is on or after suspension (day {segment.suspension_day}).")
        if phase == Phase.SUSPENSION and day != segment.suspension_day:
            add("phase", f"The suspension-day phase belongs on day {segment.suspension_day}.")
        if phase == Phase.CANCELLATION and day != segment.cancellation_day:
            add("phase", f"The cancellation-day phase belongs on day {segment.cancellation_day}.")
    if action_type in (ActionType.CALL, ActionType.BOTH):
        if not voicemail_prompt.strip():
            add("voicemail_prompt", "Required for call steps.")
        if not live_call_prompt.strip():
            add("live_call_prompt", "Required for call steps.")
    if voicemail_prompt.strip():
        for message in templating.validate_voicemail_prompt(voicemail_prompt):
            add("voicemail_prompt", message)
    if action_type in (ActionType.SMS, ActionType.BOTH) and sms_template is None:
        add("sms_template", "Required for SMS steps.")
    if sms_template is not None and phase:
        for message in templating.validate_template(sms_template.body, phase=phase):
            which = f"Template '{sms_template}'" if sms_template.pk else "The SMS text"
            add("sms_template", f"{which} does not suit a {str(label).lower()} step: {message}")
    return errors


class StateCallLimit(models.Model):
    """A state's stricter call-frequency rule (the federal default is 7 calls in 7 days)."""

    state = models.CharField(max_length=2, unique=True, help_text="Two-letter US state code, e.g. MA.")
    max_calls = models.PositiveSmallIntegerField(validators=[MinValueValidator(0)])
    period_days = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    note = models.CharField(max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "state call limit"
        verbose_name_plural = "state call limits"
        ordering = ["state"]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_days__gte=1),
                name="state_call_limit_period_positive",
                violation_error_message="The period must be at least one day.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.state}: {self.max_calls} calls per {self.period_days} days"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.state = self.state.upper()
        super().save(*args, **kwargs)


class DialerSettings(models.Model):
    """The one row of run-time settings staff change in the admin without a deploy."""

    # Always 1 and unique: the database itself refuses a second settings row.
    singleton_key = models.PositiveSmallIntegerField(default=1, editable=False, unique=True)
    queue_sql = models.TextField(
        help_text="Runs against the warehouse. Must return client_id, name, phone, segment, days_past_due, ring_group; "
        "may return amount_due, timezone, state, postal_code, payment_link, email, date_of_birth, ssn_last4 (the last two "
        "are kept only as keyed hashes)."
    )
    revalidation_interval_minutes = models.PositiveSmallIntegerField(default=30, validators=[MinValueValidator(1)])
    batch_size = models.PositiveSmallIntegerField(default=10, validators=[MinValueValidator(1)])
    release_threshold = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Free agents a ring group needs before a batch is released."
    )
    poll_interval_seconds = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1)])
    batch_timeout_seconds = models.PositiveSmallIntegerField(default=120, validators=[MinValueValidator(5)])
    sms_window_start = models.TimeField(default=dt.time(10, 0), help_text="SMS-only items go out at a random local time in this window.")
    sms_window_end = models.TimeField(default=dt.time(13, 0))
    calling_window_start = models.TimeField(
        default=dt.time(8, 0), help_text="Local time. Can only narrow the legal 08:00–21:00 window."
    )
    calling_window_end = models.TimeField(default=dt.time(21, 0))
    end_of_day = models.TimeField(default=dt.time(21, 30), help_text="Campaigns stop and flush at this time (portal time zone).")
    history_table = models.CharField(max_length=200, default="analytics.billing.dialer_call_history")
    max_calls_per_week = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(7)], help_text="Call attempts per client in any 7 days."
    )
    conversation_blackout_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(7)], help_text="No calls for this many days after a conversation."
    )
    retry_delay_minutes = models.PositiveSmallIntegerField(default=120, validators=[MinValueValidator(1)])
    max_call_attempts_per_day = models.PositiveSmallIntegerField(default=2, validators=[MinValueValidator(1)])
    calls_per_second = models.FloatField(default=1.0, validators=[MinValueValidator(0.01)])
    max_concurrent_calls = models.PositiveSmallIntegerField(default=20, validators=[MinValueValidator(1)])
    ledger_retention_days = models.PositiveSmallIntegerField(default=400, validators=[MinValueValidator(7)])
    company_name = models.CharField(max_length=80, default="Billing Team")
    promise_horizon_days = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(1)], help_text="Latest promise-to-pay date Grace may accept, in days from the call."
    )
    class EmailFollowUps(models.TextChoices):
        OFF = "off", "Never"
        FALLBACK = "fallback", "When a text cannot be sent"
        ALSO = "also", "Always, as a second channel"

    email_follow_ups = models.CharField(
        "e-mail follow-ups",
        max_length=16,
        choices=EmailFollowUps.choices,
        default=EmailFollowUps.FALLBACK,
        db_default=EmailFollowUps.FALLBACK,
        help_text="When the payment link a client asked for, and the summary of a promise to pay, also go by e-mail "
        "(only to clients with an e-mail address who did not unsubscribe). 'When a text cannot be sent': the client "
        "opted out of texts, has no mobile number, or the text was refused.",
    )
    # Retell agents for inbound calls, one per conversation path; blank = the number's own agent.
    inbound_agent_payment = models.CharField(max_length=100, blank=True, help_text="Retell agent id for callers with a balance or a promise due.")
    inbound_agent_question = models.CharField(max_length=100, blank=True, help_text="Retell agent id for callers with nothing due (paid, resolved).")
    inbound_agent_dispute = models.CharField(max_length=100, blank=True, help_text="Retell agent id for callers with an open dispute.")
    inbound_agent_escalation = models.CharField(
        max_length=100, blank=True, help_text="Retell agent id for callers who need a person (legal, attorney, vulnerable, broken promise)."
    )
    inbound_agent_generic = models.CharField(max_length=100, blank=True, help_text="Retell agent id for callers not matched to one account.")
    # The daily start: each business day's campaign created and started at a set time.
    auto_start = models.BooleanField(
        "start each business day's campaign automatically", default=False,
        help_text="At the time below, the day's campaign is created and started (the queue loads; calls begin as each "
        "client's calling window opens). A day that already has a campaign is left as it is.",
    )  # fmt: skip
    auto_start_at = models.TimeField("start at", default=dt.time(7, 30), help_text="Portal time zone.")
    business_days = models.CharField(
        max_length=20, default="0,1,2,3,4", help_text="Days of the week a campaign starts on (Monday to Friday by default)."
    )
    holiday_calendar = models.CharField(
        max_length=10, blank=True, default="US",
        help_text="Public holidays with no campaign: a country code, optionally with a state (US, US-NY, CA-ON). Blank for none.",
    )  # fmt: skip
    closed_dates = models.TextField(blank=True, help_text="Other days with no campaign, one date per line (YYYY-MM-DD).")
    sms_max_parts = models.PositiveSmallIntegerField(
        "longest text, in SMS parts", default=2, validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="Saving an SMS template warns when its text for a client queued today would need more parts than this "
        "(carriers bill and may split or drop each part).",
    )  # fmt: skip
    review_first_calls = models.PositiveSmallIntegerField(
        "calls to review after a change", default=50,
        help_text="After a change to a segment's cadence steps, texts or prompts, its first calls Grace handles (answered, "
        "transferred or voicemail) are put in the review queue, this many. 0 turns the review off.",
    )  # fmt: skip
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "dialer settings"
        verbose_name_plural = "dialer settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(calling_window_start__gte=dt.time(8, 0)) & Q(calling_window_end__lte=dt.time(21, 0))
                & Q(calling_window_start__lt=models.F("calling_window_end")),
                name="dialer_settings_calling_window_legal",
                violation_error_message="The calling window must lie inside 08:00–21:00 local time.",
            ),
            models.CheckConstraint(
                condition=Q(singleton_key=1), name="dialer_settings_single_row", violation_error_message="There is one settings row."
            ),
            models.CheckConstraint(
                condition=Q(sms_window_start__lt=models.F("sms_window_end")),
                name="dialer_settings_sms_window_ordered",
                violation_error_message="The SMS window must start before it ends.",
            ),
        ]

    def __str__(self) -> str:
        return "Dialer settings"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        for name, check in (
            ("business_days", lambda: calendar.weekdays_parse(self.business_days)),
            ("holiday_calendar", lambda: calendar.calendar_check(self.holiday_calendar)),
            ("closed_dates", lambda: calendar.closed_dates_parse(self.closed_dates)),
        ):
            try:
                check()
            except calendar.CalendarError as exc:
                errors[name] = str(exc)
        if errors:
            raise ValidationError(errors)

    def not_a_business_day(self, day: dt.date) -> str:
        """Why no campaign starts on `day` ("" on a business day)."""
        return calendar.not_a_business_day(day, weekdays=self.business_days, calendar=self.holiday_calendar, closed_dates=self.closed_dates)

    @classmethod
    def load(cls) -> DialerSettings:
        """The settings row (a data migration creates it; recreated with defaults if deleted)."""
        obj, _ = cls.objects.get_or_create(singleton_key=1, defaults={"queue_sql": DEFAULT_QUEUE_SQL})
        return obj


DEFAULT_QUEUE_SQL = """SELECT client_id, name, phone, segment, days_past_due, ring_group,
       amount_due, timezone, state, postal_code, payment_link, email, owner, tier, date_of_birth, ssn_last4
FROM billing_queue
WHERE days_past_due BETWEEN 0 AND 180
  AND balance_resolved = 0"""
