"""The segment page (steps inline in day order) and its 180-day timeline."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from cadences.models import ActionType, CadenceStep, Phase, Segment
from cadences.selectors import segment_timeline
from tests.cadences.admin_forms import change_form_data

pytestmark = pytest.mark.django_db


def test_segment_page_lists_its_steps_in_day_order_and_links_the_timeline(admin_client: Client) -> None:
    segment = Segment.objects.get(name="Reso Recurring")
    response = admin_client.get(reverse("admin:cadences_segment_change", args=[segment.pk]))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    days = [form.instance.day for form in formset.forms]
    assert days == sorted(days) and len(days) == segment.steps.count()
    assert reverse("admin:cadences_segment_timeline", args=[segment.pk]) in response.content.decode()


def test_segment_list_shows_touchpoints_and_timeline_links(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:cadences_segment_changelist")).content.decode()
    for segment in Segment.objects.all():
        assert reverse("admin:cadences_segment_timeline", args=[segment.pk]) in page
    found = admin_client.get(reverse("admin:cadences_segment_changelist"), {"q": "Servicing"}).context["cl"].result_list
    assert [s.name for s in found] == ["Reso Servicing"]


def test_saving_the_segment_page_unchanged_keeps_every_step(admin_client: Client) -> None:
    segment = Segment.objects.get(name="RED Initial")
    url = reverse("admin:cadences_segment_change", args=[segment.pk])
    before = list(segment.steps.order_by("day").values_list("day", "action_type", "phase", "sms_template_id"))
    response = admin_client.post(url, change_form_data(admin_client, url))
    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert list(segment.steps.order_by("day").values_list("day", "action_type", "phase", "sms_template_id")) == before


def test_inline_refuses_a_resurrection_phase_before_suspension(admin_client: Client) -> None:
    segment = Segment.objects.get(name="RED Initial")
    url = reverse("admin:cadences_segment_change", args=[segment.pk])
    data = change_form_data(admin_client, url)
    index = next(i for i in range(100) if data.get(f"steps-{i}-day") == 3)
    data[f"steps-{index}-phase"] = Phase.RE_ENGAGEMENT
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "Re-engagement is a resurrection phase but day 3 is before suspension (day 60)." in response.content.decode()
    assert CadenceStep.objects.get(segment=segment, day=3).phase == Phase.SOFT_INTRO


def test_timeline_selector_bands_and_milestones_for_red_initial() -> None:
    timeline = segment_timeline(segment=Segment.objects.get(name="RED Initial"))
    bands = [(b.phase, b.first_day, b.last_day, b.team) for b in timeline.bands]
    assert bands[0] == (Phase.PAYMENT_MISSED, 0, 0, "billing")
    assert bands[3] == (Phase.PRE_SUSPENSION, 31, 59, "billing")
    assert bands[4] == (Phase.SUSPENSION, 60, 60, "resurrection")
    assert bands[-2] == (Phase.PRE_CANCELLATION, 150, 179, "resurrection")
    assert bands[-1] == (Phase.CANCELLATION, 180, 180, "resurrection")
    assert [(m.day, m.label) for m in timeline.milestones] == [
        (1, "First outreach"), (60, "Suspension"), (150, "Pre-cancellation starts"), (180, "Cancellation"),
    ]
    assert sum(len(b.steps) for b in timeline.bands) == len(timeline.touchpoints) == timeline.counts["total"] == 50
    assert timeline.counts["SMS"] + timeline.counts["CALL"] + timeline.counts["BOTH"] == 50


def test_timeline_page_shades_phases_marks_milestones_and_shows_each_touchpoint(admin_client: Client) -> None:
    segment = Segment.objects.get(name="Reso Servicing")
    response = admin_client.get(reverse("admin:cadences_segment_timeline", args=[segment.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    for phase in ("soft_intro", "past_due", "pre_suspension", "suspension", "re_engagement", "direct", "pre_cancellation", "cancellation"):
        assert f"timeline-band phase-{phase}" in page
    for label in ("Day 31 · First outreach", "Day 122 · Suspension", "Day 166 · Pre-cancellation starts", "Day 180 · Cancellation"):
        assert label in page
    touchpoints = re.findall(r'<a class="timeline-touchpoint action-(sms|call|both)', page)
    steps = list(segment.steps.all())
    assert len(touchpoints) == len(steps) == 49
    assert touchpoints.count("both") == sum(s.action_type == ActionType.BOTH for s in steps)


def test_timeline_is_visible_read_only_to_supervisors(supervisor_client: Client) -> None:
    segment = Segment.objects.get(name="RED Initial")
    assert supervisor_client.get(reverse("admin:cadences_segment_timeline", args=[segment.pk])).status_code == 200


def test_timeline_of_an_unknown_segment_is_404(admin_client: Client) -> None:
    assert admin_client.get(reverse("admin:cadences_segment_timeline", args=[999999])).status_code == 404


def test_a_one_day_phase_reads_day_not_a_range(admin_client: Client) -> None:
    segment = Segment.objects.get(name="RED Initial")
    page = admin_client.get(reverse("admin:cadences_segment_timeline", args=[segment.pk])).content.decode()
    assert "days 0–0" not in page
    assert "Payment missed · day 0 ·" in page
    soft_intro = next(band for band in segment_timeline(segment=segment).bands if band.phase == Phase.SOFT_INTRO)
    assert soft_intro.first_day < soft_intro.last_day
    assert f"Soft intro · days {soft_intro.first_day}–{soft_intro.last_day} ·" in page
