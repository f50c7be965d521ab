"""The shipped content: five segments, their 180-day cadences, SMS templates and voice prompts.

A fresh database gets this from a data migration; `manage.py reset_default_cadences` puts it
back. Both go through `install_default_content`, which takes the model classes as arguments so
the migration can pass its historical models.

How a cadence is laid out
-------------------------
Phases follow the RED cadence of the specification and scale to each segment's own days. For
RED (first outreach F=1, suspension S=60, cancellation C=180):

    day 0        payment missed   one friendly SMS
    1–10         soft intro       friendly check-ins, no amounts
    11           (no touchpoint)  a quiet day between the soft intro and the first amount cited
    12–30        past due         amounts cited, urgency increasing
    31–59        pre-suspension   suspension warnings
    60           suspension day
    61–104       re-engagement    "we're still here"
    105–149      direct           "give us a call — let's talk"
    150–179      pre-cancellation cancellation risk
    180          cancellation day final message

Billing phases take the same shares of each segment's F..S window (soft intro ends after 10/59
of it, past due after 30/59, always with one quiet day before past due); resurrection phases
take the same shares of its S..C window (direct from 45/120, pre-cancellation from 90/120). The
day-0 "payment missed" SMS is sent only by segments whose outreach starts on day 1 — for
Reso Recurring (day 14) and Reso Servicing (day 31) a grace period is part of the agreement, so
their first message is the soft intro.

Every phase has the same number of touchpoints in every segment (the cadence "shape"), spread
evenly over the phase's days: 49 per segment, 50 with the day-0 SMS. Milestones — the first
outreach day, the first past-due-phase day, the first pre-suspension day, the suspension day,
the first pre-cancellation day and day 180 — are SMS-and-call (BOTH) touchpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cadences.models import DEFAULT_QUEUE_SQL, ActionType, Phase


@dataclass(frozen=True)
class SegmentSpec:
    name: str
    sort_order: int
    first_outreach_day: int
    suspension_day: int
    cancellation_day: int
    billing_transfer_number: str
    resurrection_transfer_number: str
    billing_ring_group: str
    resurrection_ring_group: str
    billing_inbox_id: str
    resurrection_inbox_id: str


# Phases and action types are typed as their stored string values (Phase / ActionType members
# are str subclasses).
@dataclass(frozen=True)
class PhaseSpan:
    phase: str
    first_day: int
    last_day: int


@dataclass(frozen=True)
class StepSpec:
    day: int
    action_type: str
    phase: str
    sms_template: str | None  # template name
    voicemail_prompt: str
    live_call_prompt: str


# Fictional numbers (555-01xx is reserved for fiction) and illustrative HeyMarket inbox ids;
# production values are entered in the admin.
SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec("RED Initial", 10, 1, 60, 180, "+12125550110", "+12125550120", "billing-red", "resurrection-red", "41010", "41020"),
    SegmentSpec("RED Recurring", 20, 1, 60, 180, "+12125550111", "+12125550121", "billing-red", "resurrection-red", "41010", "41020"),
    SegmentSpec("Reso Initial", 30, 1, 90, 180, "+13125550130", "+13125550140", "billing-reso", "resurrection-reso", "42010", "42020"),
    SegmentSpec("Reso Recurring", 40, 14, 90, 180, "+13125550131", "+13125550141", "billing-reso", "resurrection-reso", "42010", "42020"),
    SegmentSpec(
        "Reso Servicing", 50, 31, 122, 180, "+16175550150", "+16175550160",
        "billing-servicing", "resurrection-servicing", "43010", "43020",
    ),
)

# Touchpoints per phase, the same in every segment. Suspension and cancellation day have one each.
PHASE_TOUCHPOINTS: dict[str, int] = {
    Phase.SOFT_INTRO: 5,
    Phase.PAST_DUE: 9,
    Phase.PRE_SUSPENSION: 11,
    Phase.RE_ENGAGEMENT: 8,
    Phase.DIRECT: 7,
    Phase.PRE_CANCELLATION: 7,
}

# RED's phase boundaries as shares of its windows (see the module docstring).
_RED_BILLING_WINDOW = 59  # days 1..59
_SOFT_INTRO_SHARE = 10 / _RED_BILLING_WINDOW
_PAST_DUE_END_SHARE = 30 / _RED_BILLING_WINDOW
_RED_RESURRECTION_WINDOW = 120  # days 60..180
_DIRECT_START_SHARE = 45 / _RED_RESURRECTION_WINDOW
_PRE_CANCELLATION_START_SHARE = 90 / _RED_RESURRECTION_WINDOW


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def phase_spans(*, first_outreach_day: int, suspension_day: int, cancellation_day: int) -> list[PhaseSpan]:
    """The phases of a segment's lifecycle with their first and last day, in order."""
    billing = suspension_day - first_outreach_day
    soft_intro_end = first_outreach_day + _round_half_up(billing * _SOFT_INTRO_SHARE) - 1
    past_due_start = soft_intro_end + 2  # one quiet day before amounts are cited
    past_due_end = first_outreach_day + _round_half_up(billing * _PAST_DUE_END_SHARE) - 1
    resurrection = cancellation_day - suspension_day
    direct_start = suspension_day + _round_half_up(resurrection * _DIRECT_START_SHARE)
    pre_cancellation_start = suspension_day + _round_half_up(resurrection * _PRE_CANCELLATION_START_SHARE)
    spans: list[PhaseSpan] = []
    if first_outreach_day == 1:
        spans.append(PhaseSpan(Phase.PAYMENT_MISSED, 0, 0))
    spans += [
        PhaseSpan(Phase.SOFT_INTRO, first_outreach_day, soft_intro_end),
        PhaseSpan(Phase.PAST_DUE, past_due_start, past_due_end),
        PhaseSpan(Phase.PRE_SUSPENSION, past_due_end + 1, suspension_day - 1),
        PhaseSpan(Phase.SUSPENSION, suspension_day, suspension_day),
        PhaseSpan(Phase.RE_ENGAGEMENT, suspension_day + 1, direct_start - 1),
        PhaseSpan(Phase.DIRECT, direct_start, pre_cancellation_start - 1),
        PhaseSpan(Phase.PRE_CANCELLATION, pre_cancellation_start, cancellation_day - 1),
        PhaseSpan(Phase.CANCELLATION, cancellation_day, cancellation_day),
    ]
    return spans


def _spread(first_day: int, last_day: int, count: int) -> list[int]:
    """`count` days spread evenly over first_day..last_day, starting on first_day."""
    span = last_day - first_day + 1
    if count > span:
        raise ValueError(f"{count} touchpoints do not fit in days {first_day}–{last_day}.")
    return [first_day + (i * span) // count for i in range(count)]


def _action_type(phase: str, index: int, count: int) -> str:
    """Milestones are BOTH; in between, texts and calls alternate (calls first once it is direct)."""
    if phase in (Phase.SUSPENSION, Phase.CANCELLATION):
        return ActionType.BOTH
    if phase == Phase.PAYMENT_MISSED:
        return ActionType.SMS
    if index == 0 and phase in (Phase.SOFT_INTRO, Phase.PAST_DUE, Phase.PRE_SUSPENSION, Phase.PRE_CANCELLATION):
        return ActionType.BOTH
    if index == count - 1 and phase in (Phase.PRE_SUSPENSION, Phase.PRE_CANCELLATION):
        return ActionType.BOTH  # the last touchpoint before suspension / cancellation
    calls_on_odd = phase in (Phase.SOFT_INTRO, Phase.PRE_SUSPENSION, Phase.RE_ENGAGEMENT, Phase.PRE_CANCELLATION)
    on_call = (index % 2 == 1) if calls_on_odd else (index % 2 == 0)
    return ActionType.CALL if on_call else ActionType.SMS


# --- SMS templates (name → phase, body) ----------------------------------------------------
# Plain ASCII so every text stays GSM-7 (160 characters a part); every one carries opt-out
# wording; a payment link wherever a payment is invited; never a request for card details.
SMS_TEMPLATES: dict[str, tuple[str, str]] = {
    "Payment missed - friendly note": (
        Phase.PAYMENT_MISSED,
        "Hi {{ first_name }}, it's {{ company_name }}. It looks like this month's payment didn't go through - "
        "it happens! You can take care of it securely here: {{ payment_link }} Reply STOP to opt out.",
    ),
    "Soft intro - friendly reminder": (
        Phase.SOFT_INTRO,
        "Hi {{ first_name }}, just a friendly reminder from {{ company_name }}: we still have a payment that needs "
        "your attention. Take care of it securely here: {{ payment_link }} Reply STOP to opt out.",
    ),
    "Soft intro - checking in": (
        Phase.SOFT_INTRO,
        "Hi {{ first_name }}, {{ company_name }} checking in. If you have a minute, your payment can be made securely "
        "at {{ payment_link }} - or reply here with any questions. Reply STOP to opt out.",
    ),
    "Past due - holding things up": (
        Phase.PAST_DUE,
        "Hi {{ first_name }}, your overdue payment of {{ amount_due }} is holding things up. We want to help get this "
        "resolved and keep things moving: {{ payment_link }} - {{ company_name }}. Reply STOP to opt out.",
    ),
    "Past due - days overdue": (
        Phase.PAST_DUE,
        "{{ first_name }}, your payment is {{ days_past_due }} days past due with {{ amount_due }} outstanding. "
        "Pay securely at {{ payment_link }} or reply to set up a plan. {{ company_name }}. Reply STOP to opt out.",
    ),
    "Pre-suspension - at risk": (
        Phase.PRE_SUSPENSION,
        "{{ first_name }}, your account is at risk of suspension. Suspension will halt our work on your resolution "
        "options. Pay the {{ amount_due }} due at {{ payment_link }} - {{ company_name }}. Reply STOP to opt out.",
    ),
    "Pre-suspension - suspension date": (
        Phase.PRE_SUSPENSION,
        "{{ first_name }}, to avoid suspension on {{ suspension_date }}, please bring your {{ amount_due }} balance "
        "current at {{ payment_link }} or call us today. {{ company_name }}. Reply STOP to opt out.",
    ),
    "Suspension day - notice": (
        Phase.SUSPENSION,
        "{{ first_name }}, your account has been suspended and work on your resolution options is paused. We're still "
        "here when you're ready: {{ payment_link }} or reply to talk. {{ company_name }}. Reply STOP to opt out.",
    ),
    "Re-engagement - still here": (
        Phase.RE_ENGAGEMENT,
        "Hi {{ first_name }}, your account is suspended but we're still here for you. When you're ready, give us a call "
        "or text us. {{ payment_link }} - {{ company_name }}. Reply STOP to opt out.",
    ),
    "Re-engagement - ready when you are": (
        Phase.RE_ENGAGEMENT,
        "{{ first_name }}, we're still here and ready when you are. Restarting your resolution is simple: "
        "{{ payment_link }} - {{ company_name }}. Reply STOP to opt out.",
    ),
    "Direct - let's talk": (
        Phase.DIRECT,
        "{{ first_name }}, we're still here and want to help you move toward resolution. Give us a call - let's talk. "
        "{{ payment_link }} - {{ company_name }}. Reply STOP to opt out.",
    ),
    "Direct - a quick call": (
        Phase.DIRECT,
        "Hi {{ first_name }}, a quick call could get your resolution moving again. We're still here - reply or call us "
        "today. {{ payment_link }} - {{ company_name }}. Reply STOP to opt out.",
    ),
    "Pre-cancellation - keep options alive": (
        Phase.PRE_CANCELLATION,
        "{{ first_name }}, we don't want to see your case cancelled. Please call us so we can discuss keeping your "
        "resolution options alive. {{ payment_link }} - {{ company_name }}. Reply STOP to opt out.",
    ),
    "Pre-cancellation - cancellation date": (
        Phase.PRE_CANCELLATION,
        "{{ first_name }}, your case is set to be cancelled on {{ cancellation_date }}. There is still time to keep it "
        "open: {{ payment_link }} or reply to talk. {{ company_name }}. Reply STOP to opt out.",
    ),
    "Cancellation day - final notice": (
        Phase.CANCELLATION,
        "{{ first_name }}, this is our final message: your case was cancelled today. If you'd like to talk about "
        "starting again, reply or call us. {{ company_name }}. Reply STOP to opt out.",
    ),
}


def _templates_for(phase: str) -> list[str]:
    return [name for name, (template_phase, _body) in SMS_TEMPLATES.items() if template_phase == phase]


# --- Voice prompts -------------------------------------------------------------------------
# Voicemails are limited-content messages (who is calling, a call-back request, a number): a
# voicemail may be heard by someone else, so it never names a debt, an amount or a reason.
# {{client_name}} and {{transfer_number}} are Retell dynamic variables filled in at dial time.
_VOICEMAIL_BILLING = (
    'Leave exactly this message, then end the call: "Hi, this message is for {{client_name}}. This is Grace from '
    "the client services team. Please call us back at {{transfer_number}} at your earliest convenience. Thank you, "
    'and have a good day."'
)
_VOICEMAIL_RESURRECTION = (
    'Leave exactly this message, then end the call: "Hi {{client_name}}, this is Grace from the client care team. '
    "We would love to hear from you when you have a moment. Please call us back at {{transfer_number}}. "
    'Thank you."'
)
_VOICEMAIL_FINAL = (
    'Leave exactly this message, then end the call: "Hi {{client_name}}, this is Grace from the client care team '
    "with an important message. Please call us back today at {{transfer_number}}. Thank you.\""
)

_LIVE_CALL_RULES = (
    "You are Grace, calling on behalf of {{company_name}}. Before you say anything about the account, verify that "
    "you are speaking with {{client_name}}: ask for their date of birth or the last four digits of their Social "
    "Security number and check it with the verify_identity function; never repeat the answer back. Until it says "
    "verified, say only that you are calling about a matter on their account. If it says locked, do not discuss the "
    "account; ask them to call {{transfer_number}} and end the call politely.\n"
    "Once verified, get the balance, days past due, any open promise and the last payment from the lookup_account "
    "function; never state an amount you did not get from it.\n"
    "Never take card or bank numbers over the phone. If they want to pay, text them the secure payment link with "
    "the send_payment_link function and stay on the line while they open it; if it was not sent, say why in its words.\n"
    "If they cannot pay today, ask for a promise to pay: the amount and the date. Record it with the record_promise "
    "function and repeat back what it confirms, or its reason if it refused.\n"
    "If they ask to be called back, book it with the schedule_callback function; if it offers another time, offer "
    "that time to them.\n"
    "Offer a warm transfer to a specialist at {{transfer_number}} whenever they ask for a person or have questions "
    "you cannot answer; call the transfer_brief function first with why they want a person.\n"
    "If they dispute what is owed, mention hardship, ask to cancel, mention an attorney, a lawsuit or legal action, "
    "or ask us to stop calling: acknowledge it, do not argue or negotiate, tell them a specialist will follow up, and "
    "record it in the call outcome."
)

_LIVE_CALL_PHASE: dict[str, str] = {
    Phase.SOFT_INTRO: (
        "Tone: a friendly check-in. Their payment is {{days_past_due}} days late. Once verified, let them know a "
        "payment still needs their attention; do not cite the amount unless they ask for it."
    ),
    Phase.PAST_DUE: (
        "Tone: helpful and clear, with growing urgency. Once verified, say their payment of the amount lookup_account "
        "gives is {{days_past_due}} days past due and ask whether they can take care of it today through the secure link."
    ),
    Phase.PRE_SUSPENSION: (
        "Tone: urgent but respectful. Once verified, explain that the account is at risk of suspension on "
        "{{suspension_date}}, which would halt our work on their resolution options, and that the amount "
        "lookup_account gives is past due. Ask for payment today or a firm promise to pay before that date."
    ),
    Phase.SUSPENSION: (
        "Tone: calm and empathetic; this is the day the account was suspended. Once verified, explain that work on "
        "their resolution options is paused, that we're still here, and that bringing the balance lookup_account "
        "gives current restarts it. Offer the secure link or a warm transfer."
    ),
    Phase.RE_ENGAGEMENT: (
        "Tone: empathetic, no pressure: we're still here and ready when they are. Once verified, ask how they are "
        "doing, whether anything has changed, and whether they would like help restarting their resolution."
    ),
    Phase.DIRECT: (
        "Tone: warm and direct. Once verified, say we want to help them move toward resolution and ask for a few "
        "minutes now, or offer a warm transfer to a specialist."
    ),
    Phase.PRE_CANCELLATION: (
        "Tone: caring and urgent. Once verified, explain that their case is at risk of cancellation on "
        "{{cancellation_date}} and that we don't want to see it cancelled. Ask what would help them keep their "
        "resolution options alive, and offer the secure link or a warm transfer."
    ),
    Phase.CANCELLATION: (
        "Tone: respectful and final. Once verified, explain that their case was cancelled today and that they can "
        "still call us to talk about starting again. Offer a warm transfer if they want to talk now."
    ),
}


def voicemail_prompt(phase: str) -> str:
    if phase in (Phase.PRE_CANCELLATION, Phase.CANCELLATION):
        return _VOICEMAIL_FINAL
    if phase in (Phase.SUSPENSION, Phase.RE_ENGAGEMENT, Phase.DIRECT):
        return _VOICEMAIL_RESURRECTION
    return _VOICEMAIL_BILLING


def live_call_prompt(phase: str) -> str:
    return f"{_LIVE_CALL_PHASE[phase]}\n\n{_LIVE_CALL_RULES}"


def cadence_steps(spec: SegmentSpec) -> list[StepSpec]:
    """The default cadence of one segment, in day order."""
    steps: list[StepSpec] = []
    spans = phase_spans(
        first_outreach_day=spec.first_outreach_day,
        suspension_day=spec.suspension_day,
        cancellation_day=spec.cancellation_day,
    )
    for span in spans:
        count = PHASE_TOUCHPOINTS.get(span.phase, 1)
        templates = _templates_for(span.phase)
        for index, day in enumerate(_spread(span.first_day, span.last_day, count)):
            action_type = _action_type(span.phase, index, count)
            places_call = action_type in (ActionType.CALL, ActionType.BOTH)
            sends_sms = action_type in (ActionType.SMS, ActionType.BOTH)
            steps.append(
                StepSpec(
                    day=day,
                    action_type=action_type,
                    phase=span.phase,
                    sms_template=templates[index % len(templates)] if sends_sms else None,
                    voicemail_prompt=voicemail_prompt(span.phase) if places_call else "",
                    live_call_prompt=live_call_prompt(span.phase) if places_call else "",
                )
            )
    return steps


# The shipped state rule: Massachusetts allows two collection calls in seven days (940 CMR 7.04).
STATE_CALL_LIMITS = (("MA", 2, 7, "Massachusetts: at most two calls in any seven days (940 CMR 7.04(1)(f))."),)


def install_default_content(
    *,
    segment_model: Any,
    step_model: Any,
    template_model: Any,
    settings_model: Any,
    state_limit_model: Any,
) -> dict[str, int]:
    """Create or restore the default content; returns counts. Idempotent.

    Model classes are parameters so the data migration can pass its historical models. Steps of
    the default segments on days the defaults do not use are deleted.
    """
    templates = {}
    for name, (phase, body) in SMS_TEMPLATES.items():
        templates[name], _ = template_model.objects.update_or_create(name=name, defaults={"phase": str(phase), "body": body})

    steps_written = 0
    for spec in SEGMENTS:
        segment, _ = segment_model.objects.update_or_create(
            name=spec.name,
            defaults={
                "sort_order": spec.sort_order,
                "first_outreach_day": spec.first_outreach_day,
                "suspension_day": spec.suspension_day,
                "cancellation_day": spec.cancellation_day,
                "billing_transfer_number": spec.billing_transfer_number,
                "resurrection_transfer_number": spec.resurrection_transfer_number,
                "billing_ring_group": spec.billing_ring_group,
                "resurrection_ring_group": spec.resurrection_ring_group,
                "billing_inbox_id": spec.billing_inbox_id,
                "resurrection_inbox_id": spec.resurrection_inbox_id,
            },
        )
        steps = cadence_steps(spec)
        step_model.objects.filter(segment=segment).exclude(day__in=[s.day for s in steps]).delete()
        for step in steps:
            step_model.objects.update_or_create(
                segment=segment,
                day=step.day,
                defaults={
                    "action_type": str(step.action_type),
                    "phase": str(step.phase),
                    "sms_template": templates[step.sms_template] if step.sms_template else None,
                    "voicemail_prompt": step.voicemail_prompt,
                    "live_call_prompt": step.live_call_prompt,
                    "active": True,
                },
            )
            steps_written += 1

    if not settings_model.objects.exists():
        settings_model.objects.create(queue_sql=DEFAULT_QUEUE_SQL)
    for state, max_calls, period_days, note in STATE_CALL_LIMITS:
        state_limit_model.objects.update_or_create(
            state=state, defaults={"max_calls": max_calls, "period_days": period_days, "note": note}
        )
    return {"segments": len(SEGMENTS), "steps": steps_written, "templates": len(templates)}



def record_initial_history(*, model: Any, history_model: Any, when: Any, reason: str) -> int:
    """Give rows with no history a first "created" record, so the first edit shows its diff.

    Rows written by a data migration have none: django-simple-history records saves through
    signals, which historical models do not send.
    """
    recorded = set(history_model.objects.values_list("id", flat=True).distinct())
    fields = [f.attname for f in model._meta.concrete_fields]
    rows = [
        history_model(
            **{name: getattr(instance, name) for name in fields},
            history_date=when,
            history_type="+",
            history_change_reason=reason,
        )
        for instance in model.objects.exclude(pk__in=recorded)
    ]
    history_model.objects.bulk_create(rows, batch_size=200)
    return len(rows)
