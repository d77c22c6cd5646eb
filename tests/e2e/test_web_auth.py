"""The page with AUTH_MODE=api-key in a real headless Chromium: the API's 401 makes it ask for a key, kept in
sessionStorage for the tab; with it the page shows whose key it is and what is left of its day, the upload,
the gallery's overlays and the download work; a quota's 429 is shown in words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from auth_helpers import scenes_zip
from stack_harness import Stack, api_process

from backend.auth.keys import KeyStore
from backend.auth.principal import QuotaOverrides

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e


@pytest.fixture
def keyed_api(long_lived_archives: Stack, tmp_path: Path) -> Iterator[str]:
    env = {"AUTH_MODE": "api-key", "RESULTS_DIR": str(long_lived_archives.results_dir)}
    with api_process(long_lived_archives, tmp_path, **env) as (url, _, _):
        yield url


def upload_file(page: Page, data: bytes) -> None:
    page.set_input_files("#file", {"name": "scenes.zip", "mimeType": "application/zip", "buffer": data})


def test_the_page_asks_for_a_key_and_uses_it_for_everything(keyed_api: str, stack: Stack, page: Page) -> None:
    from playwright.sync_api import expect

    keys = KeyStore(stack.redis())
    suffix = str(id(page))
    key = keys.create(f"web-{suffix}", quotas=QuotaOverrides(images_per_day=3))
    page.goto(f"{keyed_api}/")
    upload_file(page, scenes_zip(2))
    expect(page.locator("#auth-box")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("Access refused")
    page.fill("#auth-key", key)
    page.click("#auth-save")
    expect(page.locator("#auth-box")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('oilspill.apiKey')") == key
    assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []
    # Near the key form: whose key it is and what is left of its day (GET /api/account).
    expect(page.locator("#account-line")).to_contain_text(f"Signed in as web-{suffix} (API key)")
    expect(page.locator("#account-line")).to_contain_text("Left today: 3 of 3 images")

    upload_file(page, scenes_zip(2))
    expect(page.locator("#job-state")).to_have_text("completed", timeout=120_000)
    expect(page.locator("#account-line")).to_contain_text("Left today: 1 of 3 images")
    page.wait_for_function(
        """() => [...document.querySelectorAll('#gallery img')]
                .filter(img => img.complete && img.naturalWidth > 0).length >= 2"""
    )
    with page.expect_download() as download_info:
        page.click("#download")
    assert download_info.value.suggested_filename.startswith("oilspill-")

    upload_file(page, scenes_zip(2, seed=7))  # 2 + 2 > 3 images today
    expect(page.locator("#error")).to_contain_text(
        "Over a limit of this service: Quota reached: images per day"
    )

    keys.revoke(f"web-{suffix}")
    page.reload()
    upload_file(page, scenes_zip(1))
    expect(page.locator("#auth-message")).to_contain_text("refused this key")
