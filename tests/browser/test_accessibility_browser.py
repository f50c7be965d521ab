"""An automated accessibility scan (axe-core in Chromium) of the login page, the portal's pages
and the main admin pages: no serious or critical violation on any of them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.browser.browsing import log_in
from tests.browser.conftest import CHROMIUM
from tests.browser.test_page_review_browser import PASSWORD, day, main_pages  # noqa: F401 - fixture
from tests.campaigns.conftest import sample_warehouse  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Fetched by `make setup` from the npm registry (see the Makefile).
AXE = Path(__file__).resolve().parents[2] / "var" / "npm" / "axe-core-4.14.1" / "axe.min.js"

SCAN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 4).map((n) => n.target.join(" ")).join(", ")}`);
}"""


@pytest.fixture
def scanning_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM}; browser tests need Debian's chromium package")
    if not AXE.exists():
        pytest.skip(f"axe-core is not at {AXE.relative_to(AXE.parents[3])}; `make setup` fetches it from the npm registry")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        # The portal's Content-Security-Policy allows only its own scripts; the scanner is not one.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        yield context.new_page()
        context.close()
        browser.close()


def violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    return list(page.evaluate(SCAN))


def test_no_serious_or_critical_accessibility_violation(day: dict[str, Any], scanning_page: Page) -> None:  # noqa: F811
    page = scanning_page
    found: dict[str, list[str]] = {}
    page.goto(f"{day['url']}/admin/login/")
    found["login"] = violations(page)
    log_in(page, day["url"], username="reviewer", password=PASSWORD, next_path="/admin/")
    for name, path in main_pages(day):
        answer = page.goto(f"{day['url']}{path}")
        assert answer is not None and answer.status == 200, path
        page.wait_for_load_state("load")
        found[name] = violations(page)
    failing = {name: problems for name, problems in found.items() if problems}
    assert not failing, "\n".join(f"{name}: {problem}" for name, problems in failing.items() for problem in problems)
