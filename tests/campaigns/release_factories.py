"""Rows the gate and release tests build on: a segment with a call step, a campaign, queue items."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pytest

from cadences.models import ActionType, CadenceStep, DialerSettings, Phase, Segment, SmsTemplate
from tests.campaigns.accounts import accounts_for
from campaigns.models import Campaign, QueueItem
from integrations.http import reset_sessions
from integrations.sandbox.models import SimulatedCall, SimulatorConfig

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
    item = QueueItem.objects.create(**item_fields(campaign, step, **fields))
    accounts_for([item])
    return item


def make_items(campaign: Campaign, step: CadenceStep, count: int, **fields: Any) -> list[QueueItem]:
    items = QueueItem.objects.bulk_create([QueueItem(**item_fields(campaign, step, **fields)) for _ in range(count)], batch_size=1000)
    accounts_for(items)
    return items


def dialer_settings(**fields: Any) -> DialerSettings:
    dialer = DialerSettings.load()
    for name, value in fields.items():
        setattr(dialer, name, value)
    dialer.save()
    return dialer


def reload(items: Iterable[QueueItem]) -> list[QueueItem]:
    by_id = QueueItem.objects.in_bulk([i.pk for i in items])
    return [by_id[i.pk] for i in items]


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.t = 5000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.t += seconds


@pytest.fixture
def sandbox(live_server, settings):
    """The app served over HTTP with its Retell and Dialflow simulators; webhooks stay undelivered
    (nothing dispatches them in tests), so the release code is observed on its own."""
    settings.SANDBOX_APP_URL = live_server.url
    settings.RETELL_API_KEY = ""
    settings.DIALFLOW_URL = ""
    settings.DIALFLOW_API_KEY = ""
    reset_sessions()
    config = SimulatorConfig.load()
    config.auto_dispatch = False
    config.retell_concurrency_limit = 1000
    config.create_error_rate = 0
    config.dialflow_pattern = [5]
    config.dialflow_overrides = {}
    config.save()
    yield config
    reset_sessions()


def simulated_calls(**filters: Any) -> list[SimulatedCall]:
    return list(SimulatedCall.objects.filter(**filters).order_by("created_at"))
