"""Rows the dashboard, KPI, timeline and API tests build on: a day of outreach with every kind of row."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from cadences.models import ActionType, CadenceStep, Phase, Segment, SmsTemplate
from cadences.roles import BILLING_MANAGERS, SUPERVISORS
from integrations import clock
from tests.campaigns.accounts import accounts_for
from campaigns.models import CallAttempt, Campaign, PromiseToPay, QueueItem, SmsMessage

_counter = itertools.count(1)


def make_user(username: str, *, group: str | None = None, password: str = "pw-for-tests-1", **fields: Any) -> Any:
    fields.setdefault("is_staff", True)
    user = get_user_model().objects.create_user(username=username, password=password, **fields)
    if group:
        role, _ = Group.objects.get_or_create(name=group)
        user.groups.add(role)
    return user


def supervisor(username: str = "sam.supervisor") -> Any:
    return make_user(username, group=SUPERVISORS)


def billing_manager(username: str = "bea.billing") -> Any:
    return make_user(username, group=BILLING_MANAGERS)


def make_segment(name: str = "RED Initial", *, suspension_day: int = 60) -> Segment:
    segment, _ = Segment.objects.get_or_create(
        name=name,
        defaults={
            "first_outreach_day": 1,
            "suspension_day": suspension_day,
            "cancellation_day": 180,
            "billing_transfer_number": "+12125550188",
            "resurrection_transfer_number": "+12125550199",
            "billing_ring_group": f"{name.lower().replace(' ', '-')}-billing",
            "resurrection_ring_group": f"{name.lower().replace(' ', '-')}-resurrection",
            "billing_inbox_id": "inbox-billing",
            "resurrection_inbox_id": "inbox-resurrection",
        },
    )
    return segment


def make_step(segment: Segment, *, day: int = 20, phase: str = Phase.PAST_DUE, action_type: str = ActionType.BOTH) -> CadenceStep:
    template = None
    if action_type != ActionType.CALL:
        template, _ = SmsTemplate.objects.get_or_create(
            name=f"dashboard test {phase}",
            defaults={"phase": phase, "body": "Hi {{ client_name }}, please call us back. Reply STOP to opt out."},
        )
    step, _ = CadenceStep.objects.update_or_create(
        segment=segment,
        day=day,
        defaults={
            "action_type": action_type,
            "phase": phase,
            "sms_template": template,
            "voicemail_prompt": "Please call us back about your account.",
            "live_call_prompt": "Remind the client of the payment and offer the payment link.",
        },
    )
    return step


def make_campaign(*, date: dt.date, **fields: Any) -> Campaign:
    fields.setdefault("status", Campaign.Status.RUNNING)
    return Campaign.objects.create(date=date, **fields)


def item_fields(campaign: Campaign, step: CadenceStep, **fields: Any) -> dict[str, Any]:
    n = next(_counter)
    routing = step.segment.routing(step.day)
    values: dict[str, Any] = {
        "campaign": campaign,
        "client_id": f"CL{n:07d}",
        "client_name": f"Client {n}",
        "phone": f"+1212555{n % 10000:04d}",
        "segment": step.segment,
        "step": step,
        "days_past_due": step.day,
        "phase": step.phase,
        "action_type": step.action_type,
        "team": routing["team"],
        "ring_group": routing["ring_group"],
        "transfer_number": routing["transfer_number"],
        "inbox_id": routing["inbox_id"],
        "voicemail_prompt": step.voicemail_prompt,
        "live_call_prompt": step.live_call_prompt,
        "amount_due": Decimal("250.00"),
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
    items = QueueItem.objects.bulk_create([QueueItem(**item_fields(campaign, step, **fields)) for _ in range(count)])
    accounts_for(items)
    return items


def make_attempt(item: QueueItem, *, outcome: str = "", status: str = CallAttempt.Status.ENDED, **fields: Any) -> CallAttempt:
    """A call attempt Retell accepted (it has a call_id), ended with `outcome`."""
    values: dict[str, Any] = {
        "campaign": item.campaign,
        "queue_item": item,
        "call_id": f"call_{uuid.uuid4().hex[:16]}",
        "from_number": "+12125550100",
        "to_number": item.phone,
        "placed_at": clock.now(),
        "status": status,
        "outcome": outcome,
    }
    values.update(fields)
    return CallAttempt.objects.create(**values)


def make_sms(item: QueueItem, *, status: str = SmsMessage.Status.SENT, **fields: Any) -> SmsMessage:
    values: dict[str, Any] = {
        "local_id": f"sms-{uuid.uuid4().hex[:16]}",
        "campaign": item.campaign,
        "queue_item": item,
        "client_id": item.client_id,
        "phone": item.phone,
        "inbox_id": item.inbox_id,
        "text": "Hi, please call us back. Reply STOP to opt out.",
        "status": status,
        "sent_at": timezone.now() if status in (SmsMessage.Status.SENT, SmsMessage.Status.DELIVERED) else None,
    }
    values.update(fields)
    return SmsMessage.objects.create(**values)


def make_promise(
    attempt: CallAttempt, *, amount: str = "100.00", status: str = PromiseToPay.Status.PENDING, created_at: dt.datetime | None = None, **fields: Any
) -> PromiseToPay:
    item = attempt.queue_item
    promise = PromiseToPay.objects.create(
        client_id=item.client_id,
        client_name=item.client_name,
        phone=item.phone,
        segment_name=item.segment.name,
        phase=item.phase,
        amount=Decimal(amount),
        promised_date=item.campaign.date + dt.timedelta(days=7),
        call_id=attempt.call_id,
        status=status,
        **fields,
    )
    if created_at is not None:
        PromiseToPay.objects.filter(pk=promise.pk).update(created_at=created_at)
        promise.refresh_from_db()
    return promise


def at(date: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """An aware datetime on `date` in the portal's time zone."""
    return timezone.make_aware(dt.datetime.combine(date, dt.time(hour, minute)))
