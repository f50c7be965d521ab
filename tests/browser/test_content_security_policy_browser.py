"""Every page in Chromium under the content security policy, which runs no inline script.

The walk visits every HTML page the resolver knows (as a superuser, so none is refused), records
each policy violation and uncaught script error, and checks that the pages whose features are
scripts still work. Then a page is tampered with on its way to the browser, as an injection
would, to show an inline script and a javascript: link do nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.contrib.staticfiles import finders
from playwright.sync_api import Page, expect

from campaigns.dashboard import selectors
from campaigns.models import Campaign, FollowUpTask
from campaigns.templatetags.dashboard_tags import CHART_LIBRARY
from tests.browser.browsing import log_in
from tests.campaigns.dashboard_factories import make_attempt, make_campaign, make_items, make_segment, make_step
from tests.security.test_url_permissions import all_routes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password-csp"

# Recorded in every document before its own scripts run (Playwright's init scripts are not
# subject to the page's policy).
VIOLATIONS_PROBE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""

# Not pages: webhooks, the simulators, JSON and CSV endpoints, downloads, redirects, POST-only views.
NOT_PAGES = ("webhooks/", "sandbox/", "api/token/", "api/schema/", "admin/logout/", "admin/jsi18n/", "admin/r/", "dashboard/status/")
NOT_PAGE_WORDS = ("csv", "progress", "preview", "format", "autocomplete")


@pytest.fixture
def world(live_server: Any, settings: Any) -> dict[str, Any]:
    # The dashboard asks the sandbox Dialflow for free agents: the live server's.
    settings.SANDBOX_APP_URL = live_server.url
    segment = make_segment()
    step = make_step(segment)
    campaign = make_campaign(date=selectors.today(), status=Campaign.Status.RUNNING, rows_read=3, rows_inserted=3)
    items = make_items(campaign, step, 3)
    make_attempt(items[0], outcome="answered")
    FollowUpTask.objects.create(
        kind=FollowUpTask.Kind.CALLBACK_REQUEST, client_id=items[0].client_id, client_name=items[0].client_name, phone=items[0].phone,
        due_at=dt.datetime.now(dt.timezone.utc), detail="Call back after 5", team="billing", source_ref="csp-test",
    )  # fmt: skip
    get_user_model().objects.create_superuser("root.csp", password=PASSWORD)
    values = {
        "pk": str(campaign.pk),
        "action": "pause",
        "client_id": items[0].client_id,
        "content_type_id": str(ContentType.objects.get_for_model(Campaign).pk),
        "object_id": str(campaign.pk),
        "app_label": "campaigns",
    }
    return {"campaign": campaign, "step": step, "values": values}


def _pages(values: dict[str, str]) -> list[str]:
    urls = []
    for route in all_routes(values):
        if route.template.startswith(NOT_PAGES) or any(word in route.template or word in (route.name or "") for word in NOT_PAGE_WORDS):
            continue
        if route.url not in urls:
            urls.append(route.url)
    return urls


def _watch(page: Page) -> list[str]:
    problems: list[str] = []
    page.add_init_script(VIOLATIONS_PROBE)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: script error {error}"))
    page.on(
        "console",
        lambda message: problems.append(f"{page.url}: {message.text}")
        if message.type == "error" and "Content Security Policy" in message.text
        else None,
    )
    return problems


def test_every_page_works_under_the_policy(world: dict[str, Any], live_server: Any, page: Page) -> None:
    problems = _watch(page)
    log_in(page, live_server.url, username="root.csp", password=PASSWORD, next_path="/admin/")
    expect(page.locator("#site-name")).to_be_visible()
    visited = 0
    for url in _pages(world["values"]):
        # Asked first without rendering: a POST-only view or a JSON answer is not a page.
        probe = page.request.get(live_server.url + url, max_redirects=0)
        assert probe.status < 500, (url, probe.status)
        if probe.status != 200 or "text/html" not in probe.headers.get("content-type", ""):
            continue
        response = page.goto(live_server.url + url)
        assert response is not None and response.status == 200, url
        policy = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0], url
        page.wait_for_load_state("load")
        problems.extend(f"{url}: {v}" for v in page.evaluate("window.__cspViolations || []"))
        visited += 1
    assert visited > 60
    assert problems == []


def test_the_scripted_features_still_work(world: dict[str, Any], live_server: Any, page: Page) -> None:
    problems = _watch(page)
    log_in(page, live_server.url, username="root.csp", password=PASSWORD, next_path="/dashboard/")
    charts = bool(finders.find(CHART_LIBRARY))

    # The dashboard's poll fills in the time of its last refresh.
    expect(page.locator("[data-updated]").first).not_to_be_empty(timeout=15_000)
    if charts:
        expect(page.locator('[data-chart="outcome-mix"] canvas').first).to_be_attached()

    page.goto(f"{live_server.url}/dashboard/kpis/")
    if charts:
        expect(page.locator('[data-chart="kpi-trend"] canvas')).to_be_attached()

    # The SMS template preview is fetched and rendered by a script.
    page.goto(f"{live_server.url}/admin/cadences/smstemplate/{world['step'].sms_template_id}/change/")
    expect(page.locator("#sms-live-preview [data-role=text]")).not_to_be_empty()

    # The admin's own scripts: select-all for actions, and the calendar shortcuts of a date field.
    page.goto(f"{live_server.url}/admin/campaigns/followuptask/")
    page.locator("#action-toggle").check()
    expect(page.locator("input.action-select").first).to_be_checked()
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{world['campaign'].pk}/change/")
    expect(page.locator(".datetimeshortcuts").first).to_be_attached()

    # Swagger UI loads its set-up script from a file and lists the operations.
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)

    problems.extend(page.evaluate("window.__cspViolations || []"))
    assert problems == []


def test_an_injected_inline_script_does_not_run(world: dict[str, Any], live_server: Any, page: Page) -> None:
    log_in(page, live_server.url, username="root.csp", password=PASSWORD, next_path="/admin/")
    injected = (
        "<script>window.__injected = 'ran';</script>"
        '<a id="injected-link" href="javascript:void(window.__injected=\'clicked\')">Listen to the recording</a>'
        "<img src=x onerror=\"window.__injected='onerror'\">"
    )

    def tamper(route: Any) -> None:
        # What the server sent, headers included, with the injection added as a stored value
        # rendered unescaped would add it.
        response = route.fetch()
        body = response.text().replace("</body>", injected + "</body>")
        route.fulfill(response=response, body=body)

    page.route(f"{live_server.url}/dashboard/", tamper)
    page.goto(f"{live_server.url}/dashboard/")
    expect(page.locator("#injected-link")).to_be_attached()
    page.wait_for_load_state("load")
    assert page.evaluate("window.__injected === undefined")  # neither the script nor the handler ran
    page.click("#injected-link")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__injected === undefined")  # nor the link
