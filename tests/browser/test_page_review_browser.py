"""Every main page in Chromium while a day runs and after it is flushed: each one is screenshotted
(test-artifacts/review-*.png, to look at), and the test fails on a console error, a missing page
asset (404) or any answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import Page

from cadences.models import DialerSettings, Segment, SmsTemplate
from cadences.services import cadences_reset_defaults
from campaigns.compliance.gate import Block, Rule, gate_record
from campaigns.lifecycle import campaign as lifecycle
from campaigns.models import CallAttempt, Campaign, FollowUpTask, QueueItem
from tests.browser.browsing import log_in, pages_review
from tests.campaigns.conftest import NOW, SampleWarehouse, client_row, sample_warehouse  # noqa: F401 - fixture
from tests.campaigns.dialflow_stub import stub_dialflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password-1"


@pytest.fixture
def day(sample_warehouse: SampleWarehouse, settings: Any, tmp_path: Any, live_server: Any) -> Iterator[dict[str, Any]]:  # noqa: F811
    settings.RECONCILED_FILE_DIR = tmp_path / "reconciled"
    # The shipped cadences come from the migrations, and a transactional test before this one
    # flushed them with everything else: put them back.
    cadences_reset_defaults()
    get_user_model().objects.create_superuser("reviewer", "reviewer@example.com", PASSWORD)
    sample_warehouse.add([client_row(days_past_due=3) for _ in range(4)] + [client_row(days_past_due=0)])
    campaign = lifecycle.campaign_create(date=NOW.date())
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING)
    campaign.refresh_from_db()
    lifecycle.campaign_load_and_run(campaign=campaign, now=NOW, start_release=False)
    answered, blocked = campaign.items.filter(action_type="CALL").order_by("client_id")[:2]
    CallAttempt.objects.create(
        campaign=campaign, queue_item=answered, client_id=answered.client_id, placed_at=NOW, call_id="call_review",
        to_number=answered.phone, status="ended", outcome="answered", duration_ms=61000, summary="Will pay Friday.",
    )  # fmt: skip
    QueueItem.objects.filter(pk=answered.pk).update(status="answered")
    gate_record(
        block=Block(rule=Rule.CONVERSATION_BLACKOUT, detail="A conversation 2 days ago.", inputs={"since": NOW.isoformat()}),
        client_id=blocked.client_id, channel="call", now=NOW, campaign=campaign, item=blocked,
    )  # fmt: skip
    FollowUpTask.objects.create(kind="dispute", client_id=answered.client_id, due_at=NOW, source_ref="call_review", detail="Disputes the fee.")
    with stub_dialflow(settings, agents={"billing": 2}):
        yield {"url": live_server.url, "campaign": campaign, "client_id": answered.client_id, "blocked": blocked.client_id}


def main_pages(day: dict[str, Any]) -> list[tuple[str, str]]:
    campaign = Campaign.objects.get(pk=day["campaign"].pk)
    return [
        ("dashboard", f"/dashboard/?date={campaign.date.isoformat()}"),
        ("kpis", "/dashboard/kpis/"),
        ("clients", "/dashboard/clients/"),
        ("follow-ups", "/dashboard/follow-ups/"),
        ("call-reviews", "/dashboard/reviews/"),
        ("timeline", f"/dashboard/clients/{day['client_id']}/"),
        ("admin", "/admin/"),
        ("gate-decisions", "/admin/campaigns/gatedecision/"),
        ("why-not-called", f"/admin/campaigns/gatedecision/why-not-called/?client_id={day['blocked']}"),
        ("queue-items", "/admin/campaigns/queueitem/"),
        ("campaign", f"/admin/campaigns/campaign/{campaign.pk}/change/"),
        ("segment-timeline", f"/admin/cadences/segment/{Segment.objects.get(name='RED Initial').pk}/timeline/"),
        ("sms-template", f"/admin/cadences/smstemplate/{SmsTemplate.objects.order_by('pk').first().pk}/change/"),  # type: ignore[union-attr]
        ("dialer-settings", f"/admin/cadences/dialersettings/{DialerSettings.load().pk}/change/"),
        ("follow-up-tasks", "/admin/campaigns/followuptask/"),
    ]


def review(page: Page, day: dict[str, Any], moment: str) -> None:
    assert pages_review(page, day["url"], main_pages(day), moment=moment) == []


def test_every_main_page_during_and_after_the_day(day: dict[str, Any], page: Page) -> None:
    log_in(page, day["url"], username="reviewer", password=PASSWORD, next_path="/admin/")
    review(page, day, "during")

    Campaign.objects.filter(pk=day["campaign"].pk).update(status=Campaign.Status.STOPPED, stopped_at=timezone.now())
    flushed = lifecycle.campaign_flush(campaign=Campaign.objects.get(pk=day["campaign"].pk))
    assert flushed.status == Campaign.Status.FLUSHED
    review(page, day, "after")
