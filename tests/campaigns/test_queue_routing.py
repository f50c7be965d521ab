"""Phase routing switches from billing to resurrection on each segment's suspension day."""

from __future__ import annotations

import pytest

from cadences.models import CadenceStep, Segment
from campaigns.models import QueueItem
from campaigns.queue import load as queue

from .conftest import NOW, client_row

SEGMENTS = ("RED Initial", "RED Recurring", "Reso Initial", "Reso Recurring", "Reso Servicing")


@pytest.mark.django_db
@pytest.mark.parametrize("segment_name", SEGMENTS)
def test_routing_switches_at_the_suspension_day(sample_warehouse, campaign, segment_name):
    segment = Segment.objects.get(name=segment_name)
    steps = CadenceStep.objects.filter(segment=segment, active=True)
    last_billing_day = steps.filter(day__lt=segment.suspension_day).order_by("-day").values_list("day", flat=True).first()
    first_after = steps.filter(day__gt=segment.suspension_day).order_by("day").values_list("day", flat=True).first()
    before, on, after = sample_warehouse.add(
        client_row(segment=segment_name, days_past_due=day) for day in (last_billing_day, segment.suspension_day, first_after)
    )

    queue.queue_load(campaign=campaign, now=NOW)

    billing = QueueItem.objects.get(campaign=campaign, client_id=before["client_id"])
    assert (billing.team, billing.ring_group, billing.transfer_number, billing.inbox_id) == (
        "billing",
        segment.billing_ring_group,
        segment.billing_transfer_number,
        segment.billing_inbox_id,
    )
    for row in (on, after):
        item = QueueItem.objects.get(campaign=campaign, client_id=row["client_id"])
        assert (item.team, item.ring_group, item.transfer_number, item.inbox_id) == (
            "resurrection",
            segment.resurrection_ring_group,
            segment.resurrection_transfer_number,
            segment.resurrection_inbox_id,
        )


@pytest.mark.django_db
def test_routing_follows_the_segment_not_the_warehouse_ring_group(sample_warehouse, campaign):
    segment = Segment.objects.get(name="Reso Servicing")
    row = client_row(segment="Reso Servicing", days_past_due=segment.suspension_day, ring_group="billing-legacy")
    sample_warehouse.add([row])

    queue.queue_load(campaign=campaign, now=NOW)

    item = QueueItem.objects.get(campaign=campaign, client_id=row["client_id"])
    assert item.ring_group == segment.resurrection_ring_group
    assert item.warehouse_ring_group == "billing-legacy"


@pytest.mark.django_db
def test_routing_uses_the_segments_numbers_as_edited(sample_warehouse, campaign):
    segment = Segment.objects.get(name="RED Initial")
    segment.resurrection_transfer_number = "+13125550177"
    segment.save()
    row = client_row(days_past_due=segment.suspension_day)
    sample_warehouse.add([row])

    queue.queue_load(campaign=campaign, now=NOW)

    assert QueueItem.objects.get(campaign=campaign, client_id=row["client_id"]).transfer_number == "+13125550177"
