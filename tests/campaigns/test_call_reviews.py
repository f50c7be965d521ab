"""The review of the first calls after a cadence change: opened from the cadences' history,
filled with the calls Grace handled after it, judged by a supervisor, compared with before."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.db.models import F
from django.test import Client
from django.urls import reverse

from cadences.models import CadenceStep, DialerSettings, SmsTemplate
from campaigns.metrics import reviews
from campaigns.models import CallAttempt, CallReview, PromiseToPay, ReviewRound
from integrations import clock
from tests.cadences.admin_forms import change_form_data
from tests.campaigns.dashboard_factories import billing_manager, make_segment, make_step, supervisor

pytestmark = pytest.mark.django_db


@pytest.fixture
def step() -> CadenceStep:
    """A segment set up yesterday, reviewed already: today's changes are what count."""
    step = make_step(make_segment("RED Initial"), day=20)
    step.voicemail_prompt = "Hi, this is Grace calling for Jordan. Please call us back at 800 555 0100. Thank you."
    step.save()
    for model in (CadenceStep, SmsTemplate):
        model.history.update(history_date=F("history_date") - dt.timedelta(days=1))
    reviews.call_reviews_sync()
    ReviewRound.objects.update(superseded_at=clock.now() - dt.timedelta(hours=1))
    return step


def call(at: dt.datetime, *, outcome: str = "answered", segment: str = "RED Initial", duration_ms: int = 60000, **fields: Any) -> CallAttempt:
    return CallAttempt.objects.create(
        client_id=fields.pop("client_id", f"C-{uuid.uuid4().hex[:6]}"), to_number="+12125550100", call_id=f"call_{uuid.uuid4().hex}",
        placed_at=at, status=CallAttempt.Status.ENDED, outcome=outcome, segment_name=segment, duration_ms=duration_ms, **fields,
    )  # fmt: skip


def change_prompt(client: Client, step: CadenceStep, prompt: str) -> None:
    url = reverse("admin:cadences_cadencestep_change", args=[step.pk])
    data = change_form_data(client, url)
    data["live_call_prompt"] = prompt
    response = client.post(url, data)
    assert response.status_code == 302, (response.context["adminform"].form.errors, [f.errors for f in response.context["inline_admin_formsets"]] if response.context.get("inline_admin_formsets") else None)


def test_a_prompt_change_in_the_admin_opens_a_review_of_the_first_calls_after_it(step: CadenceStep) -> None:
    staff = supervisor()
    staff.is_superuser = True
    staff.save()
    admin = Client()
    admin.force_login(staff)
    settings_row = DialerSettings.load()
    settings_row.review_first_calls = 2
    settings_row.save()
    before = call(clock.now() - dt.timedelta(days=2))
    change_prompt(admin, step, step.live_call_prompt + " Thank them for their time.")
    changed = clock.now()

    assert reviews.call_reviews_sync()["opened"] == 1
    round_ = ReviewRound.objects.get(superseded_at=None)
    assert round_.segment_name == "RED Initial" and round_.calls_wanted == 2
    assert round_.change == f"Live call prompt of the day 20 SMS and call step changed by {staff.get_username()}."

    # Only calls Grace handled after the change, the first two of them.
    call(changed + dt.timedelta(minutes=1), outcome="no_answer")
    first = call(changed + dt.timedelta(minutes=2), outcome="voicemail")
    second = call(changed + dt.timedelta(minutes=3))
    call(changed + dt.timedelta(minutes=4))
    call(changed + dt.timedelta(minutes=5), segment="Other Segment")
    reviews.call_reviews_sync()
    assert set(round_.reviews.values_list("attempt_id", flat=True)) == {first.pk, second.pk}
    assert not CallReview.objects.filter(attempt=before).exists()
    # Syncing again adds nothing.
    assert reviews.call_reviews_sync() == {"opened": 0, "calls_added": 0}


def test_a_save_that_changes_nothing_opens_no_review(step: CadenceStep) -> None:
    step.save()
    assert reviews.call_reviews_sync()["opened"] == 0


def test_a_template_change_reviews_every_segment_using_it_and_a_later_change_replaces_the_review(step: CadenceStep) -> None:
    other = make_step(make_segment("RED Escalated"), day=25)
    other.sms_template = step.sms_template
    other.save()
    CadenceStep.history.filter(id=other.pk).update(history_date=F("history_date") - dt.timedelta(days=1))
    reviews.review_rounds_open()  # the second segment's set-up, yesterday
    template = step.sms_template
    template.body = template.body + " Questions? Reply to this text."
    template.save()
    opened = reviews.review_rounds_open()
    assert sorted(r.segment_name for r in opened) == ["RED Escalated", "RED Initial"]
    assert all(f"of the text “{template.name}” changed" in r.change for r in opened)

    first = ReviewRound.objects.get(segment_name="RED Initial", superseded_at=None)
    kept = call(clock.now() + dt.timedelta(minutes=1))
    reviews.review_rounds_fill()
    # Twenty minutes later another change: a new review; the first keeps the call placed before it.
    CadenceStep.history.filter(id=step.pk).update(history_date=F("history_date") - dt.timedelta(minutes=1))
    step.active = False
    step.save()
    CadenceStep.history.filter(id=step.pk).order_by("-history_date").filter(history_type="~", active=False).update(
        history_date=clock.now() + dt.timedelta(minutes=20)
    )
    reviews.call_reviews_sync()
    first.refresh_from_db()
    assert first.superseded_at is not None and list(first.reviews.values_list("attempt_id", flat=True)) == [kept.pk]
    latest = ReviewRound.objects.get(segment_name="RED Initial", superseded_at=None)
    assert "Active of the day 20" in latest.change


def test_a_supervisor_judges_each_call_and_the_comparison_counts_it(step: CadenceStep) -> None:
    step.live_call_prompt += " Be brief."
    step.save()
    reviews.call_reviews_sync()
    round_ = ReviewRound.objects.get(superseded_at=None)
    now = clock.now()
    old = [call(now - dt.timedelta(days=3), duration_ms=30000), call(now - dt.timedelta(days=4), outcome="voicemail", duration_ms=20000)]
    assert old
    right = call(now + dt.timedelta(minutes=1), summary="Client agreed to pay Friday.", transcript="Agent: Hello...", duration_ms=90000)
    wrong = call(now + dt.timedelta(minutes=2), outcome="transferred", duration_ms=150000)
    PromiseToPay.objects.create(client_id=right.client_id, promised_date=now.date() + dt.timedelta(days=3), call_id=right.call_id)
    reviews.review_rounds_fill()

    viewer = Client()
    viewer.force_login(billing_manager())
    page = viewer.get(reverse("campaigns-review-round", args=[round_.pk]))
    assert page.status_code == 200 and "Client agreed to pay Friday." in page.content.decode()
    mark = reverse("campaigns-review-mark", args=[round_.pk, CallReview.objects.get(attempt=right).pk])
    assert viewer.post(mark, {"verdict": "right"}).status_code == 403

    boss = Client()
    boss.force_login(supervisor())
    assert boss.post(mark, {"verdict": "right", "note": "Good close.", "show": "pending"}).status_code == 302
    wrong_mark = reverse("campaigns-review-mark", args=[round_.pk, CallReview.objects.get(attempt=wrong).pk])
    boss.post(wrong_mark, {"verdict": "wrong", "note": "Transferred too early."})
    assert boss.post(wrong_mark, {"verdict": "maybe"}).status_code == 302  # refused with a message, nothing changed
    judged = dict(CallReview.objects.values_list("attempt_id", "verdict"))
    assert judged == {right.pk: "right", wrong.pk: "wrong"}
    assert CallReview.objects.get(attempt=right).note == "Good close."

    comparison = reviews.review_comparison(round_)
    assert (comparison["right"], comparison["wrong"], comparison["right_rate"]) == (1, 1, 0.5)
    assert comparison["after"] == {
        "calls": 2, "answered_rate": 0.5, "transfer_rate": 0.5, "voicemail_rate": 0.0, "promise_rate": 0.5, "average_seconds": 120,
    }  # fmt: skip
    assert comparison["before"]["calls"] == 2 and comparison["before"]["voicemail_rate"] == 0.5 and comparison["before"]["average_seconds"] == 25
    kpis = boss.get(reverse("campaigns-kpis")).content.decode()
    assert "The first calls after a cadence change" in kpis and "(1 of 2)" in kpis and "120 s / 25 s" in kpis
    assert boss.get(reverse("campaigns-review-rounds")).status_code == 200


def test_the_review_is_off_at_zero(step: CadenceStep) -> None:
    DialerSettings.objects.update(review_first_calls=0)
    step.live_call_prompt += " Be brief."
    step.save()
    assert reviews.call_reviews_sync()["opened"] == 0


def test_a_whole_cadence_set_up_at_once_is_one_review_described_in_a_few_lines() -> None:
    segment = make_segment("Trial Segment")
    for day in range(20, 40):
        step = make_step(segment, day=day)
        step.voicemail_prompt = "Hi, this is Grace calling for Jordan. Please call us back at 800 555 0100. Thank you."
        step.save()
    # Saved in one go (a reset of the cadences does that): every record has the same time.
    first = CadenceStep.history.filter(segment_id=segment.pk).order_by("history_date").values_list("history_date", flat=True)[0]
    CadenceStep.history.filter(segment_id=segment.pk).update(history_date=first)
    reviews.review_rounds_open()
    (round_,) = ReviewRound.objects.filter(segment_name="Trial Segment")
    lines = round_.change.splitlines()
    assert len(lines) == reviews.CHANGE_LINES + 1 and lines[0] == "The day 20 SMS and call step was added."
    # 20 steps added, 6 shown (the prompt saves of the same instant change nothing next to an addition).
    assert lines[-1] == "… and 14 more changes."
