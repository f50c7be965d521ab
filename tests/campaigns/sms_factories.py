"""Rows the SMS tests build on: the shipped cadences, a running campaign, SMS queue items."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cadences.defaults import install_default_content
from cadences.models import ActionType, CadenceStep, DialerSettings, Segment, SmsTemplate, StateCallLimit
from cadences.resolution import cadence_index
from tests.campaigns.accounts import accounts_for
from campaigns.models import Campaign, QueueItem

_counter = itertools.count(1)

CAMPAIGN_DATE = dt.date(2025, 6, 10)


@pytest.fixture
def shipped_cadences(transactional_db: None) -> None:
    """The shipped segments, cadences and templates, for tests that serve HTTP from a live server.

    Those tests run outside a rolled-back transaction, and the database is emptied after each
    one; installing the defaults here is much faster than Django's serialized rollback.
    """
    if not Segment.objects.exists():
        install_default_content(
            segment_model=Segment,
            step_model=CadenceStep,
            template_model=SmsTemplate,
            settings_model=DialerSettings,
            state_limit_model=StateCallLimit,
        )


def running_campaign(*, date: dt.date = CAMPAIGN_DATE, **fields: Any) -> Campaign:
    fields.setdefault("status", Campaign.Status.RUNNING)
    return Campaign.objects.create(date=date, **fields)


def sms_step(segment: Segment, *, action_type: str = ActionType.SMS, before_day: int | None = None) -> CadenceStep:
    """A shipped step of the segment that sends a text (the latest one before `before_day`)."""
    steps = CadenceStep.objects.filter(segment=segment, action_type=action_type, active=True)
    if before_day is not None:
        steps = steps.filter(day__lt=before_day)
    step = steps.order_by("-day").first()
    assert step is not None, f"no {action_type} step in {segment}"
    return step


def queue_item(
    campaign: Campaign,
    *,
    segment: str = "RED Initial",
    day: int | None = None,
    action_type: str = ActionType.SMS,
    **fields: Any,
) -> QueueItem:
    """An item resolved the way the queue load resolves it: the touchpoint of (segment, day)."""
    seg = Segment.objects.get(name=segment)
    if day is None:
        day = sms_step(seg, action_type=action_type).day
    touchpoint = cadence_index().touchpoint(seg, day)
    assert touchpoint is not None, f"{segment} has no touchpoint on day {day}"
    n = next(_counter)
    values: dict[str, Any] = {
        "campaign": campaign,
        "client_id": f"S{n:06d}",
        "client_name": "Jordan  Avery",
        "phone": f"+1212555{n % 10000:04d}",
        "segment": seg,
        "step": touchpoint.step,
        "days_past_due": day,
        "phase": touchpoint.step.phase,
        "action_type": touchpoint.step.action_type,
        "team": touchpoint.team,
        "ring_group": touchpoint.ring_group,
        "transfer_number": touchpoint.transfer_number,
        "inbox_id": touchpoint.inbox_id,
        "voicemail_prompt": touchpoint.step.voicemail_prompt,
        "live_call_prompt": touchpoint.step.live_call_prompt,
        "amount_due": Decimal("1234.56"),
        "payment_link": "",
        "state": "NY",
        "timezones": "America/New_York",
    }
    if touchpoint.step.action_type == ActionType.SMS:
        # As the queue load inserts them: scheduled, with no send time until sms_schedule runs.
        values["status"] = QueueItem.Status.SMS_SCHEDULED
        values["sms_status"] = QueueItem.SmsStatus.SCHEDULED
    else:
        values["sms_status"] = QueueItem.SmsStatus.PENDING
    values.update(fields)
    item = QueueItem.objects.create(**values)
    accounts_for([item])
    return item


def local(day: dt.date, hour: int, minute: int = 0, zone: str = "America/New_York") -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZoneInfo(zone))
