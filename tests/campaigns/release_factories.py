"""Rows the gate and release tests build on: a segment with a call step, a campaign, queue items."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from cadences.models import ActionType, CadenceStep, DialerSettings, Phase, Segment, SmsTemplate
from campaigns.models import Campaign, QueueItem

_counter = itertools.count(1)


def make_segment(name: str = "Release Test Segment") -> Segment:
    segment, _ = Segment.objects.get_or_create(
        name=name,
        defaults={
            "first_outreach_day": 1,
            "suspension_day": 60,
            "cancellation_day": 180,
            "billing_transfer_number": "+12125550188",
            "resurrection_transfer_number": "+12125550199",
            "billing_ring_group": "billing",
            "resurrection_ring_group": "resurrection",
            "billing_inbox_id": "inbox-billing",
            "resurrection_inbox_id": "inbox-resurrection",
        },
    )
    return segment


def make_call_step(segment: Segment, *, day: int = 20, action_type: str = ActionType.CALL) -> CadenceStep:
    template = None
    if action_type != ActionType.CALL:
        template, _ = SmsTemplate.objects.get_or_create(
            name="Release test reminder", defaults={"phase": Phase.PAST_DUE, "body": "Hi {{ first_name }}, please call us back."}
        )
    step, _ = CadenceStep.objects.get_or_create(
        segment=segment,
        day=day,
        defaults={
            "action_type": action_type,
            "sms_template": template,
            "phase": Phase.PAST_DUE,
            "voicemail_prompt": "Please call us back about your account.",
            "live_call_prompt": "Remind the client of the past-due payment and offer the payment link.",
        },
    )
    return step


def make_campaign(*, date: dt.date = dt.date(2025, 6, 10), **fields: Any) -> Campaign:
    fields.setdefault("status", Campaign.Status.RUNNING)
    return Campaign.objects.create(date=date, **fields)


def item_fields(campaign: Campaign, step: CadenceStep, **fields: Any) -> dict[str, Any]:
    n = next(_counter)
    values: dict[str, Any] = {
        "campaign": campaign,
        "client_id": f"C{n:06d}",
        "client_name": "Jordan Avery",
        "phone": f"+1212555{n % 10000:04d}",
        "segment": step.segment,
        "step": step,
        "days_past_due": step.day,
        "phase": step.phase,
        "action_type": step.action_type,
        "team": "billing",
        "ring_group": "billing",
        "transfer_number": step.segment.billing_transfer_number,
        "inbox_id": step.segment.billing_inbox_id,
        "voicemail_prompt": step.voicemail_prompt,
        "live_call_prompt": step.live_call_prompt,
        "amount_due": Decimal("123.45"),
        "payment_link": "https://pay.example.com/p/abc",
        "state": "NY",
        "timezones": "America/New_York",
    }
    values.update(fields)
    return values


def make_item(campaign: Campaign, step: CadenceStep, **fields: Any) -> QueueItem:
    return QueueItem.objects.create(**item_fields(campaign, step, **fields))


def make_items(campaign: Campaign, step: CadenceStep, count: int, **fields: Any) -> list[QueueItem]:
    return QueueItem.objects.bulk_create([QueueItem(**item_fields(campaign, step, **fields)) for _ in range(count)], batch_size=1000)


def dialer_settings(**fields: Any) -> DialerSettings:
    dialer = DialerSettings.load()
    for name, value in fields.items():
        setattr(dialer, name, value)
    dialer.save()
    return dialer


def reload(items: Iterable[QueueItem]) -> list[QueueItem]:
    by_id = QueueItem.objects.in_bulk([i.pk for i in items])
    return [by_id[i.pk] for i in items]
