"""A supervisor in Chromium: logs in, watches the counters move while the day runs, and stops it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from zoneinfo import ZoneInfo
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone
from django_q.conf import Conf
from playwright.sync_api import Page, expect

from cadences.models import Phase
from cadences.roles import SUPERVISORS
from campaigns.dashboard import selectors
from campaigns.models import CallAttempt, Campaign, DailyKpi, GateDecision, QueueItem
from campaigns.calls.release import LoopState, Pacer, release_pass
from campaigns.transitions import queue_item_transition
from campaigns.templatetags.dashboard_tags import CHART_LIBRARY
from tests.browser.browsing import log_in, screenshot
from tests.campaigns.dashboard_factories import (
    make_attempt,
    make_campaign,
    make_items,
    make_promise,
    make_segment,
    make_step,
    make_user,
)
from integrations import http
from integrations.http import reset_sessions
from integrations.sandbox.delivery import sandbox_dispatch_due
from integrations.sandbox.models import SimulatorConfig
from tests.campaigns.dialflow_stub import stub_dialflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

S = QueueItem.Status
PASSWORD = "a-long-test-password-1"
# The dashboard polls every few seconds; give a change two polls to show.
POLL_WAIT_MS = 10_000


def walk(item: QueueItem, *path: str) -> None:
    current = item.status
    for status in path:
        assert queue_item_transition(item_id=item.pk, from_statuses=[current], to_status=status)
        current = status


def deliver_everything() -> None:
    later = timezone.now() + dt.timedelta(days=1)
    while sandbox_dispatch_due(now=later):
        pass


@pytest.fixture
def running_campaign(settings: Any, live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    step = make_step(make_segment("RED Initial"), day=20, phase=Phase.PAST_DUE)
    campaign = make_campaign(date=selectors.today(), status=Campaign.Status.RUNNING, rows_read=20, rows_inserted=20)
    items = make_items(campaign, step, 20)
    make_user("sam.supervisor", group=SUPERVISORS, password=PASSWORD)
    # The sandbox Retell is the live server's; the webhook's processing task runs in the thread
    # that received it, as a worker would run it, and network retries do not pause.
    settings.SANDBOX_APP_URL = live_server.url
    settings.RETELL_API_KEY = ""
    monkeypatch.setattr(Conf, "SYNC", True)
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.0)
    http.reset_sessions()
    reset_sessions()
    simulator = SimulatorConfig.load()
    simulator.auto_dispatch = False
    simulator.create_error_rate = 0
    simulator.save()
    # Free agents come from a stand-in availability API (it touches no database, so the page's
    # background lookups never race the test's own writes on the shared SQLite connection).
    with stub_dialflow(settings, agents={items[0].ring_group: 4}):
        yield {"campaign": campaign, "items": items, "ring_group": items[0].ring_group}


def counter(page: Page, name: str) -> Any:
    return page.locator(f'[data-counter="{name}"] .value')


def test_a_supervisor_watches_the_counters_move_and_stops_the_campaign(
    live_server: Any, page: Page, running_campaign: dict[str, Any]
) -> None:
    campaign, items = running_campaign["campaign"], running_campaign["items"]
    log_in(page, live_server.url, username="sam.supervisor", password=PASSWORD, next_path="/dashboard/")

    expect(page).to_have_url(f"{live_server.url}/dashboard/")
    card = page.locator(f'[data-campaign="{campaign.pk}"]')
    expect(card.locator("[data-status-badge]")).to_have_text("Running")
    expect(counter(page, "queued")).to_have_text("20")
    expect(counter(page, "answered")).to_have_text("0")
    expect(page.locator(".sandbox-banner")).to_contain_text("no real calls or texts")
    screenshot(page, "dashboard-start")

    # The day moves on while the page is open: the release loop asks the availability API for free
    # agents, places a batch through the sandbox Retell over HTTP, and the simulator's signed
    # webhooks bring the outcomes back; then Retell stops answering and the supervisor is told.
    simulator = SimulatorConfig.load()
    simulator.speed_factor = 10_000  # a simulated call lasts milliseconds
    simulator.forced_outcomes = {items[0].phone: "answered", items[1].phone: "answered", items[2].phone: "voicemail", items[3].phone: "answered"}
    simulator.save()
    Campaign.objects.filter(pk=campaign.pk).update(batch_size=4)
    campaign.refresh_from_db()
    noon = dt.datetime.combine(campaign.date, dt.time(12, 0), tzinfo=ZoneInfo("America/New_York"))
    release_pass(campaign=campaign, now_fn=lambda: noon, state=LoopState(pacer=Pacer(None)))
    deliver_everything()
    assert CallAttempt.objects.filter(campaign=campaign).exclude(call_id=None).count() == 4

    expect(counter(page, "answered")).to_have_text("3", timeout=POLL_WAIT_MS)
    expect(counter(page, "voicemail")).to_have_text("1")
    expect(counter(page, "dialing")).to_have_text("0")
    expect(counter(page, "queued")).to_have_text("16")
    expect(page.locator("[data-batches]")).to_contain_text(running_campaign["ring_group"])

    simulator.create_error_rate = 1.0  # every create-call answers 500 from here on
    simulator.save()
    Campaign.objects.filter(pk=campaign.pk).update(batch_size=1)  # one call's retries are enough
    campaign.refresh_from_db()
    release_pass(campaign=campaign, now_fn=lambda: noon + dt.timedelta(minutes=5), state=LoopState(pacer=Pacer(None)))
    expect(page.locator("[data-alerts]")).to_contain_text("Retell did not answer", timeout=POLL_WAIT_MS)
    expect(counter(page, "queued")).to_have_text("16")  # the refused calls wait in the queue for a retry
    ring_row = page.locator("[data-ring-groups] tr").first
    expect(ring_row).to_contain_text(running_campaign["ring_group"])
    expect(ring_row.locator("td").nth(1)).to_have_text("4")  # free agents, from the availability API
    expect(page.locator("[data-live]")).to_have_attribute("data-live", "live")
    if finders.find(CHART_LIBRARY):
        expect(card.locator('[data-chart="funnel"] canvas')).to_be_visible()
    else:
        expect(card.locator('[data-chart="funnel"] table')).to_be_visible()
    screenshot(page, "dashboard-running")

    # Stop: the button leads to a confirmation, and only its POST stops the day.
    card.locator('[data-control="stop"]').click()
    expect(page.locator("h1")).to_contain_text(f"Stop {campaign}")
    screenshot(page, "dashboard-confirm-stop")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
    page.get_by_role("button", name="Yes, stop the campaign").click()

    expect(page).to_have_url(f"{live_server.url}/dashboard/")
    expect(page.locator(".messages")).to_contain_text("stop requested")
    # With the worker's tasks run at once, the stop goes on through the history flush.
    expect(card.locator("[data-status-badge]")).to_have_text(re.compile("Stopping|Stopped|Flushed"))
    expect(card.locator('[data-control="stop"]')).to_be_hidden()
    campaign.refresh_from_db()
    assert campaign.status in (Campaign.Status.STOPPING, Campaign.Status.STOPPED, Campaign.Status.FLUSHED)
    screenshot(page, "dashboard-stopping")


def test_the_kpi_page_and_a_client_timeline_render_for_a_supervisor(
    live_server: Any, page: Page, running_campaign: dict[str, Any]
) -> None:
    campaign, items = running_campaign["campaign"], running_campaign["items"]
    today = campaign.date
    for days_ago in range(1, 31):
        DailyKpi.objects.create(
            date=today - dt.timedelta(days=days_ago), segment_name="RED Initial", phase=Phase.PAST_DUE,
            queued=400, calls_placed=300, answered=60 + days_ago % 7 * 5, right_party_contacts=55, voicemail=110,
            transferred=10, no_answer=100, failed=20, sms_sent=150, promises=12 + days_ago % 5, promises_kept=6,
            amount_promised=Decimal("1500.00"), amount_recovered=Decimal("600.00"), disputes=2, opt_outs=3,
        )
    walk(items[0], S.RELEASING, S.DIALING, S.ANSWERED)
    attempt = make_attempt(
        items[0], outcome="answered", transcript="Agent: Hi, this is Grace.\nUser: I can pay Friday.",
        recording_url="https://recordings.example.com/r1.wav", summary="Promised to pay on Friday.",
    )
    make_promise(attempt, amount="180.00")
    GateDecision.objects.create(
        client_id=items[0].client_id, campaign=campaign, campaign_date=today, channel="call", rule="local_window",
        detail="It is 07:40 in America/New_York; calls are allowed 08:00–21:00.", inputs={"local_time": "07:40"},
        decided_at=attempt.created_at - dt.timedelta(hours=3),
    )

    log_in(page, live_server.url, username="sam.supervisor", password=PASSWORD, next_path="/dashboard/kpis/")
    expect(page.locator("h1")).to_contain_text("KPIs")
    expect(page.locator('[data-kpi-table="1"]')).to_contain_text("RED Initial")
    expect(page.locator('[data-kpi-table="3"]')).to_contain_text("Last 30 days")
    if finders.find(CHART_LIBRARY):
        expect(page.locator('[data-chart="kpi-trend"] canvas')).to_be_visible()
    else:
        expect(page.locator('[data-chart="kpi-trend"] table')).to_be_visible()
    screenshot(page, "kpis")

    page.fill("#client-lookup-q", items[0].client_id)
    page.press("#client-lookup-q", "Enter")
    expect(page).to_have_url(f"{live_server.url}/dashboard/clients/{items[0].client_id}/")
    expect(page.locator('[data-kind="gate"]')).to_contain_text("Local window")  # the rule in words
    page.locator('[data-kind="call"] summary').click()
    expect(page.locator('[data-kind="call"] .transcript')).to_contain_text("I can pay Friday.")
    expect(page.locator('[data-kind="call"] a[href="https://recordings.example.com/r1.wav"]')).to_be_visible()
    expect(page.locator('[data-kind="promise"]')).to_contain_text("$180.00")
    screenshot(page, "client-timeline")

    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui")).to_contain_text("Billing Dialer API", timeout=POLL_WAIT_MS)
    screenshot(page, "api-docs")
