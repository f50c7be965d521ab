"""Daily KPIs: the figures per segment and phase, the rate formulas, and the snapshot that outlives the flush."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cadences.models import Phase
from campaigns.models import CallAttempt, DailyKpi, FollowUpTask, PromiseToPay, QueueItem, SmsMessage, Suppression
from campaigns.metrics import kpis
from tests.campaigns.dashboard_factories import (
    at,
    make_attempt,
    make_campaign,
    make_item,
    make_promise,
    make_segment,
    make_sms,
    make_step,
)

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 3, 10)
O = CallAttempt.Outcome


@pytest.fixture
def day_of_outreach() -> dict[str, object]:
    """RED Initial past-due and Reso Initial re-engagement, with one of everything a day produces."""
    red = make_step(make_segment("RED Initial"), day=20, phase=Phase.PAST_DUE)
    reso = make_step(make_segment("Reso Initial", suspension_day=90), day=95, phase=Phase.RE_ENGAGEMENT)
    campaign = make_campaign(date=DAY)

    red_items = [make_item(campaign, red) for _ in range(6)]
    reso_items = [make_item(campaign, reso) for _ in range(3)]

    answered = make_attempt(red_items[0], outcome=O.ANSWERED)
    make_attempt(red_items[1], outcome=O.ANSWERED, custom_analysis={"right_party": False})
    transferred = make_attempt(red_items[2], outcome=O.TRANSFERRED)
    make_attempt(red_items[3], outcome=O.VOICEMAIL)
    make_attempt(red_items[4], outcome=O.NO_ANSWER)
    make_attempt(red_items[4], outcome=O.FAILED, attempt_number=2)
    # Never reached Retell: not a placed call.
    CallAttempt.objects.create(
        campaign=campaign, queue_item=red_items[5], to_number=red_items[5].phone, status=CallAttempt.Status.NOT_DIALED
    )
    reso_answer = make_attempt(reso_items[0], outcome=O.ANSWERED)
    make_attempt(reso_items[2], outcome=O.ANSWERED, custom_analysis={"right_party": "No", "call_summary": "spoke to a roommate"})
    make_attempt(reso_items[1], outcome=O.VOICEMAIL)

    make_sms(red_items[3])
    make_sms(red_items[4], status=SmsMessage.Status.DELIVERED)
    make_sms(reso_items[2], status=SmsMessage.Status.FAILED)
    make_sms(red_items[3], kind=SmsMessage.Kind.OPT_OUT_CONFIRMATION)

    make_promise(answered, amount="120.50", status=PromiseToPay.Status.KEPT, amount_recovered=Decimal("120.50"), created_at=at(DAY, 11))
    make_promise(reso_answer, amount="80.00", created_at=at(DAY, 12))
    FollowUpTask.objects.create(
        kind=FollowUpTask.Kind.DISPUTE, client_id=transferred.queue_item.client_id, due_at=at(DAY, 17), source_ref=transferred.call_id
    )
    # A hardship task is not a dispute.
    FollowUpTask.objects.create(
        kind=FollowUpTask.Kind.HARDSHIP, client_id=answered.queue_item.client_id, due_at=at(DAY, 17), source_ref=answered.call_id
    )
    opt_out = Suppression.objects.create(
        phone=red_items[3].phone, channel=Suppression.Channel.SMS, reason=Suppression.Reason.SMS_OPT_OUT, source="heymarket"
    )
    Suppression.objects.filter(pk=opt_out.pk).update(created_at=at(DAY, 13))
    # An opt-out from another day does not count for this one.
    old = Suppression.objects.create(
        client_id=reso_items[1].client_id, channel=Suppression.Channel.CALL, reason=Suppression.Reason.DO_NOT_CALL, source="call"
    )
    Suppression.objects.filter(pk=old.pk).update(created_at=at(DAY - dt.timedelta(days=3), 13))
    return {"campaign": campaign}


def test_it_computes_each_figure_per_segment_and_phase(day_of_outreach: dict[str, object]) -> None:
    figures = kpis.campaign_kpi_figures(campaign=day_of_outreach["campaign"])

    assert set(figures) == {("RED Initial", Phase.PAST_DUE), ("Reso Initial", Phase.RE_ENGAGEMENT)}
    red = figures[("RED Initial", Phase.PAST_DUE)]
    assert red["queued"] == 6
    assert red["calls_placed"] == 6
    assert (red["answered"], red["transferred"], red["voicemail"], red["no_answer"], red["failed"]) == (2, 1, 1, 1, 1)
    assert red["right_party_contacts"] == 2  # the wrong-party answer is a contact but not a right-party one
    assert red["sms_sent"] == 2
    assert red["promises"] == 1 and red["promises_kept"] == 1
    assert red["amount_promised"] == Decimal("120.50") and red["amount_recovered"] == Decimal("120.50")
    assert red["disputes"] == 1
    assert red["opt_outs"] == 1

    reso = figures[("Reso Initial", Phase.RE_ENGAGEMENT)]
    assert (reso["queued"], reso["calls_placed"], reso["answered"], reso["voicemail"]) == (3, 3, 2, 1)
    assert reso["right_party_contacts"] == 1  # "No" as text is a wrong party too
    assert reso["sms_sent"] == 0  # the failed text is not a sent one
    assert reso["promises"] == 1 and reso["promises_kept"] == 0
    assert reso["amount_promised"] == Decimal("80.00") and reso["amount_recovered"] == 0
    assert reso["opt_outs"] == 0


def test_rates_follow_their_documented_formulas(day_of_outreach: dict[str, object]) -> None:
    red = kpis.campaign_kpi_figures(campaign=day_of_outreach["campaign"])[("RED Initial", Phase.PAST_DUE)]
    rates = kpis.kpi_rates(red)

    assert rates["contact_rate"] == pytest.approx(3 / 6)
    assert rates["right_party_contact_rate"] == pytest.approx(2 / 6)
    assert rates["transfer_rate"] == pytest.approx(1 / 3)
    assert rates["voicemail_rate"] == pytest.approx(1 / 6)
    assert rates["promise_to_pay_rate"] == pytest.approx(1 / 2)
    assert rates["promise_kept_rate"] == pytest.approx(1.0)
    assert rates["dispute_escalation_rate"] == pytest.approx(1 / 3)
    assert rates["opt_out_rate"] == pytest.approx(1 / 8)


def test_a_rate_without_a_denominator_is_none_not_zero() -> None:
    rates = kpis.kpi_rates(kpis.empty_figures())
    assert set(rates) == set(kpis.RATE_LABELS)
    assert all(value is None for value in rates.values())


def test_totals_are_sums_of_figures(day_of_outreach: dict[str, object]) -> None:
    figures = kpis.campaign_kpi_figures(campaign=day_of_outreach["campaign"])
    total = kpis.sum_figures(figures.values())
    assert total["calls_placed"] == 9
    assert total["amount_promised"] == Decimal("200.50")
    assert kpis.kpi_rates(total)["contact_rate"] == pytest.approx(5 / 9)


def test_snapshot_survives_the_queue_cleanup_and_is_idempotent(day_of_outreach: dict[str, object]) -> None:
    campaign = day_of_outreach["campaign"]
    assert kpis.kpis_snapshot(campaign=campaign) == 2
    assert kpis.kpis_snapshot(campaign=campaign) == 2

    QueueItem.objects.filter(campaign=campaign).delete()  # what the flush does next

    rows = {(r.segment_name, r.phase): r for r in DailyKpi.objects.filter(date=DAY)}
    assert len(rows) == 2 and DailyKpi.objects.count() == 2
    red = rows[("RED Initial", Phase.PAST_DUE)]
    assert (red.queued, red.calls_placed, red.answered, red.right_party_contacts, red.transferred) == (6, 6, 2, 2, 1)
    assert (red.sms_sent, red.promises, red.promises_kept, red.disputes, red.opt_outs) == (2, 1, 1, 1, 1)
    assert red.amount_promised == Decimal("120.50")


def test_each_snapshot_refreshes_the_promises_of_the_previous_days() -> None:
    step = make_step(make_segment("RED Initial"), day=20, phase=Phase.PAST_DUE)
    earlier_day = DAY - dt.timedelta(days=3)
    earlier = make_campaign(date=earlier_day)
    promise = make_promise(make_attempt(make_item(earlier, step), outcome=O.ANSWERED), amount="60.00", created_at=at(earlier_day, 10))
    kpis.kpis_snapshot(campaign=earlier)
    row = DailyKpi.objects.get(date=earlier_day)
    assert (row.promises, row.promises_kept, row.amount_recovered) == (1, 0, 0)

    # The promise is kept after its day was snapshotted; the next day's snapshot catches up.
    PromiseToPay.objects.filter(pk=promise.pk).update(status=PromiseToPay.Status.KEPT, amount_recovered=Decimal("60.00"))
    today = make_campaign(date=DAY)
    make_item(today, step)
    kpis.kpis_snapshot(campaign=today)

    row.refresh_from_db()
    assert (row.promises, row.promises_kept, row.amount_recovered) == (1, 1, Decimal("60.00"))
    assert row.calls_placed == 1  # the day's call figures are left as they were
