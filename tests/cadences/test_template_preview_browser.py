"""The template editor's live preview, driven in Chromium: typing updates text, length and problems."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect, sync_playwright

from cadences.models import SmsTemplate

# live_server needs a transactional database. An earlier transactional test's flush may have
# removed the shipped content, so this test creates the template it edits.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser.new_page()
        browser.close()


def test_typing_in_the_body_updates_the_preview(live_server: Any, page: Page) -> None:
    get_user_model().objects.create_superuser("editor", "editor@example.com", "a-long-test-password")
    template = SmsTemplate.objects.create(
        name="Browser test - past due",
        phase="past_due",
        body="Hi {{ first_name }}, your overdue payment of {{ amount_due }} is holding things up. Reply STOP to opt out.",
    )

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "editor")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/cadences/smstemplate/{template.pk}/change/")

    preview = page.locator("#sms-live-preview")
    expect(preview.locator("[data-role=text]")).to_contain_text("Hi Jordan, your overdue payment of $249.00")

    page.fill("#id_body", "Hi {{ first_name }}, {{ amount_due }} is due. {{ nickname }} Reply STOP to opt out.")
    expect(preview.locator("[data-role=text]")).to_have_text("Hi Jordan, $249.00 is due. Reply STOP to opt out.")
    expect(preview.locator("[data-role=summary]")).to_have_text("49 characters, 1 SMS part (GSM-7)")
    expect(preview.locator("[data-role=problems]")).to_contain_text("Unknown variable 'nickname'")

    page.fill("#id_body", "Olá {{ first_name }} ✓ Reply STOP to opt out.")
    expect(preview.locator("[data-role=summary]")).to_have_text("35 characters, 1 SMS part (UCS-2)")
    expect(preview.locator("[data-role=problems] li")).to_have_count(0)

    page.select_option("#id_phase", "soft_intro")
    page.fill("#id_body", "Hi {{ first_name }}, {{ amount_due }} now. Reply STOP to opt out.")
    expect(preview.locator("[data-role=problems]")).to_contain_text("must not cite the amount")
