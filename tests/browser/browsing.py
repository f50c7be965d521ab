"""What a person does in the browser, for the page tests: log in, take a screenshot, look over
the main pages."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page, Response

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ (kept out of git) and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, base_url: str, *, username: str, password: str, next_path: str) -> None:
    """Through the real login form, as a person would."""
    page.goto(f"{base_url}{next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


# What a page loads for itself; a 404 on any of them is a broken page.
PAGE_ASSETS = {"stylesheet", "script", "image", "font", "fetch", "xhr"}


def pages_review(page: Page, base_url: str, pages: Iterable[tuple[str, str]], *, moment: str) -> list[str]:
    """Open each (name, path), screenshot it (review-<moment>-<name>.png) and return what went
    wrong: a page not answering 200, a console error, a 404 for a page's own asset, any 5xx."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"{page.url}: console error: {message.text}")

    def on_response(response: Response) -> None:
        if response.status >= 500:
            problems.append(f"{response.status} {response.url}")
        elif response.status == 404 and response.request.resource_type in PAGE_ASSETS:
            problems.append(f"404 {response.url} (a {response.request.resource_type} of {page.url})")

    page.on("console", on_console)
    page.on("response", on_response)
    try:
        for name, path in pages:
            answer = page.goto(f"{base_url}{path}")
            if answer is None or answer.status != 200:
                problems.append(f"{path}: {answer.status if answer else 'no answer'}")
            page.wait_for_load_state("load")
            page.wait_for_timeout(300)  # the pages' own first requests (previews, feeds)
            screenshot(page, f"review-{moment}-{name}")
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("response", on_response)
    return problems

