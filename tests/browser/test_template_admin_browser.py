"""A billing manager in Chromium edits an SMS template in the admin and sees the live preview."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from cadences.models import SmsTemplate
from cadences.roles import BILLING_MANAGERS
from tests.browser.browsing import log_in, screenshot
from tests.campaigns.dashboard_factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password-2"


def test_a_billing_manager_edits_a_template_and_sees_the_preview(live_server: Any, page: Page) -> None:
    make_user("bea.billing", group=BILLING_MANAGERS, password=PASSWORD)
    template = SmsTemplate.objects.create(
        name="Past due reminder (browser test)",
        phase="past_due",
        body="Hi {{ first_name }}, your payment of {{ amount_due }} is past due. Reply STOP to opt out.",
    )

    log_in(page, live_server.url, username="bea.billing", password=PASSWORD, next_path=f"/admin/cadences/smstemplate/{template.pk}/change/")
    expect(page.locator("#id_body")).to_be_visible()
    preview = page.locator("#sms-live-preview")
    expect(preview.locator("[data-role=text]")).to_contain_text("your payment of $")

    new_body = "Hi {{ first_name }}, we still need {{ amount_due }} from you. Pay here: {{ payment_link }} Reply STOP to opt out."
    page.fill("#id_body", new_body)
    expect(preview.locator("[data-role=text]")).to_contain_text("we still need $")
    expect(preview.locator("[data-role=summary]")).to_contain_text("SMS part")
    expect(preview.locator("[data-role=problems] li")).to_have_count(0)
    screenshot(page, "admin-template-preview")

    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    template.refresh_from_db()
    assert template.body == new_body
    screenshot(page, "admin-template-saved")
