"""The worklists in Chromium at 1,280 px: every column fits, nothing is clipped, links lead on."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from cadences.models import Segment
from cadences.services import cadences_reset_defaults
from cadences.roles import SUPERVISORS
from campaigns.models import Account, FollowUpTask
from tests.browser.browsing import log_in, screenshot
from tests.campaigns.dashboard_factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password-1"

# Any element whose content is wider than its box, or a page wider than the window.
CLIPPED = """() => {
  const clipped = [...document.querySelectorAll('main td, main th')]
    .filter((cell) => cell.scrollWidth > cell.clientWidth + 1)
    .map((cell) => cell.textContent.trim().slice(0, 40));
  if (document.documentElement.scrollWidth > window.innerWidth) clipped.push('page wider than the window');
  return clipped;
}"""


@pytest.fixture
def worklists(live_server: Any) -> dict[str, Any]:
    cadences_reset_defaults()  # the shipped segments, which an earlier transactional test may have flushed
    owner = make_user("sam.supervisor", group=SUPERVISORS, password=PASSWORD)
    red = Segment.objects.get(name="RED Initial")
    now = timezone.now()
    for n in range(12):
        Account.objects.create(
            client_id=f"CL-{n:04d}", name=f"Client Number {n} With A Rather Long Family Name", phone=f"+1212555{n:04d}",
            segment=red, owner="collections-east" if n % 2 else "", amount_due=Decimal("12345.67"), days_past_due=20 + n,
            first_seen_at=now, last_seen_at=now - dt.timedelta(hours=n),
        )  # fmt: skip
        FollowUpTask.objects.create(
            kind=list(FollowUpTask.Kind)[n % len(FollowUpTask.Kind)], client_id=f"CL-{n:04d}", client_name=f"Client Number {n}",
            owner=owner if n % 3 == 0 else None, due_at=now + dt.timedelta(hours=n - 4, minutes=30), source_ref=f"call_{n}",
            detail="The client said the amount is wrong and asked for a statement by email before paying anything more. " * (1 + n % 2),
        )  # fmt: skip
    return {"url": live_server.url}


def test_the_follow_up_queue_and_the_clients_page_fit_1280_pixels(worklists: dict[str, Any], page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    base = worklists["url"]
    log_in(page, base, username="sam.supervisor", password=PASSWORD, next_path="/dashboard/follow-ups/")
    expect(page.locator("h1")).to_have_text("Follow-up queue")
    expect(page.locator("tbody tr")).to_have_count(12)
    assert page.evaluate(CLIPPED) == []
    screenshot(page, "follow-ups-1280")

    page.select_option("select[name=owner]", "none")
    page.check("input[name=overdue]")
    page.click("form.filters button[type=submit]")
    expect(page.locator("tbody tr")).to_have_count(2)  # unassigned and past due: tasks 1 and 2
    page.locator("tbody tr").first.locator("a", has_text="CL-0001").click()
    expect(page).to_have_url(f"{base}/dashboard/clients/CL-0001/")

    page.goto(f"{base}/dashboard/clients/")
    expect(page.locator("h1")).to_have_text("Clients")
    expect(page.locator("tbody tr")).to_have_count(12)
    expect(page.locator("tbody")).to_contain_text("$12,345.67")
    assert page.evaluate(CLIPPED) == []
    screenshot(page, "clients-1280")
    page.fill("main input[name=q]", "Number 1")
    page.select_option("select[name=owner]", "collections-east")
    page.click("form.filters button[type=submit]")
    expect(page.locator("tbody tr")).to_have_count(2)  # 1 and 11
