"""Today's touchpoint is resolved from (segment, days past due) against the shipped cadences."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from cadences.models import ActionType, CadenceStep, Phase, Segment
from campaigns.models import QueueItem, RejectedRow
from campaigns.queue import load as queue

from .conftest import NOW, UNFILTERED_SQL, client_row

SEGMENTS = ("RED Initial", "RED Recurring", "Reso Initial", "Reso Recurring", "Reso Servicing")


def boundary_days(segment: Segment) -> list[int]:
    return sorted(
        {
            segment.first_outreach_day - 1,
            segment.first_outreach_day,
            segment.suspension_day - 1,
            segment.suspension_day,
            150,
            180,
            181,
        }
    )


@pytest.mark.django_db
@pytest.mark.parametrize("segment_name", SEGMENTS)
def test_each_boundary_day_resolves_to_that_days_step_or_to_none(sample_warehouse, campaign, segment_name):
    segment = Segment.objects.get(name=segment_name)
    days = boundary_days(segment)
    rows = sample_warehouse.add(client_row(segment=segment_name, days_past_due=day) for day in days)

    progress = queue.queue_load(campaign=campaign, now=NOW, sql=UNFILTERED_SQL)

    steps = {s.day: s for s in CadenceStep.objects.filter(segment=segment, active=True)}
    no_touchpoint = 0
    for row, day in zip(rows, days):
        item = QueueItem.objects.filter(campaign=campaign, client_id=row["client_id"]).first()
        if day > 180:
            assert item is None
            rejected = RejectedRow.objects.get(campaign=campaign, client_id=row["client_id"])
            assert "outside 0–180" in rejected.reason
        elif day in steps:
            assert item is not None, f"{segment_name} day {day} has a step but nothing was queued"
            assert item.step_id == steps[day].pk
            assert item.days_past_due == day
            assert item.phase == steps[day].phase
            assert item.action_type == steps[day].action_type
        else:
            assert item is None, f"{segment_name} day {day} has no step but was queued"
            no_touchpoint += 1
    assert progress.no_touchpoint == no_touchpoint
    assert progress.rejected == 1
    assert progress.inserted == len([d for d in days if d in steps])


@pytest.mark.django_db
@pytest.mark.parametrize("segment_name", SEGMENTS)
def test_milestone_days_always_have_a_touchpoint(sample_warehouse, campaign, segment_name):
    segment = Segment.objects.get(name=segment_name)
    milestones = (segment.first_outreach_day, segment.suspension_day, 180)
    rows = sample_warehouse.add(client_row(segment=segment_name, days_past_due=day) for day in milestones)

    queue.queue_load(campaign=campaign, now=NOW)

    first, suspension, cancellation = (QueueItem.objects.get(campaign=campaign, client_id=r["client_id"]) for r in rows)
    assert first.phase in (Phase.SOFT_INTRO,)
    assert suspension.phase == Phase.SUSPENSION
    assert cancellation.phase == Phase.CANCELLATION
    # Milestones call and text.
    assert {first.action_type, suspension.action_type, cancellation.action_type} == {ActionType.BOTH}


@pytest.mark.django_db
@pytest.mark.parametrize("segment_name", ["Reso Recurring", "Reso Servicing"])
def test_grace_period_segments_have_nothing_before_first_outreach(sample_warehouse, campaign, segment_name):
    segment = Segment.objects.get(name=segment_name)
    rows = sample_warehouse.add(client_row(segment=segment_name, days_past_due=day) for day in (0, segment.first_outreach_day - 1))

    progress = queue.queue_load(campaign=campaign, now=NOW)

    assert progress.no_touchpoint == 2
    assert not QueueItem.objects.filter(campaign=campaign, client_id__in=[r["client_id"] for r in rows]).exists()


@pytest.mark.django_db
def test_an_inactive_step_is_no_touchpoint(sample_warehouse, campaign):
    step = CadenceStep.objects.get(segment__name="RED Initial", day=1)
    step.active = False
    step.save()
    sample_warehouse.add([client_row(days_past_due=1)])

    progress = queue.queue_load(campaign=campaign, now=NOW)

    assert (progress.inserted, progress.no_touchpoint) == (0, 1)


@pytest.mark.django_db
def test_action_type_sets_the_items_starting_state(sample_warehouse, campaign):
    segment = Segment.objects.get(name="RED Initial")
    by_type = {}
    for action_type in ActionType.values:
        by_type[action_type] = CadenceStep.objects.filter(segment=segment, action_type=action_type, active=True).order_by("day").first()
    rows = {t: client_row(days_past_due=step.day) for t, step in by_type.items()}
    sample_warehouse.add(rows.values())

    queue.queue_load(campaign=campaign, now=NOW)

    items = {t: QueueItem.objects.get(campaign=campaign, client_id=row["client_id"]) for t, row in rows.items()}
    assert (items["SMS"].status, items["SMS"].sms_status) == ("sms_scheduled", "scheduled")
    assert (items["CALL"].status, items["CALL"].sms_status) == ("queued", "none")
    assert (items["BOTH"].status, items["BOTH"].sms_status) == ("queued", "pending")
    assert items["CALL"].voicemail_prompt == by_type["CALL"].voicemail_prompt
    assert items["CALL"].live_call_prompt == by_type["CALL"].live_call_prompt


@pytest.mark.django_db
def test_row_values_are_carried_onto_the_item(sample_warehouse, campaign):
    row = client_row(
        days_past_due=1,
        amount_due="1,234.50",
        payment_link="https://pay.example.com/invoice/xyz",
        email="pat@example.com",
        segment="red_initial",
        phone="(212) 555-0142",
        ring_group="billing-east",
    )
    sample_warehouse.add([row])

    queue.queue_load(campaign=campaign, now=NOW)

    item = QueueItem.objects.get(campaign=campaign, client_id=row["client_id"])
    assert str(item.amount_due) == "1234.50"
    assert item.payment_link == "https://pay.example.com/invoice/xyz"
    assert item.email == "pat@example.com"
    assert item.phone == "+12125550142"
    assert item.segment.name == "RED Initial"
    assert item.warehouse_ring_group == "billing-east"
    assert item.client_name == row["name"]
    assert item.source == "warehouse"
    # Timestamps are written by the bulk path itself, and read back as aware datetimes.
    assert abs(item.created_at - timezone.now()) < dt.timedelta(minutes=5)
    assert item.status_changed_at == item.created_at
    assert item.skip_detail == {} and item.sms_due_at is None and item.call_attempts == 0
