"""Browser fixtures for the page tests: Debian's Chromium through Playwright, never `playwright install`.

Skipped, with the reason, where Playwright or the browser is missing; in CI (CI=true) that fails instead:
.ci/run installs Debian's chromium first. Every browser test of this folder uses these.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page
    from stack_harness import Stack

LONG_TTL_SECONDS = 300  # the test stack's own 6 s archives would expire under the browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI: .ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed: pip install -r requirements-dev.txt")
    if not CHROMIUM.is_file():
        unavailable(f"no Chromium at {CHROMIUM}: on Debian/Ubuntu, apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def long_lived_archives(stack: Stack) -> Iterator[Stack]:
    """The stack with a worker that keeps archives LONG_TTL_SECONDS; the usual worker again afterwards."""
    stack.stop("worker")
    stack.start_worker(ARCHIVE_TTL_SECONDS=str(LONG_TTL_SECONDS))
    try:
        yield stack
    finally:
        stack.stop("worker")
        stack.start_worker()
