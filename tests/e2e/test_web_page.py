"""The analysts' page at `/` in a real headless Chromium (Playwright), against the session's real stack.

Skipped, with the reason, where Playwright or Debian's chromium is missing; never `playwright install`. In CI
(CI=true) a missing browser fails the tests instead: .ci/run installs Debian's chromium first.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from backend.storage.layout import output_names

if TYPE_CHECKING:
    from playwright.sync_api import Page
    from stack_harness import Stack

pytestmark = pytest.mark.e2e

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
JOB_TIMEOUT_MS = 120_000
# Long enough to look at the countdown and download; the stack's own 6 s would race the browser.
TIMES = "\u00d7"  # the multiplication sign the page writes sizes with

Encode = Callable[[np.ndarray, str], bytes]
MakeSar = Callable[..., np.ndarray]


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def file_payload(name: str, data: bytes, mime: str = "application/zip") -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


def drop(page: Page, name: str, data: bytes) -> None:
    """Drop a file on the drop zone, as a drag from the desktop does."""
    transfer = page.evaluate_handle(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name));
            return transfer;
        }""",
        [name, base64.b64encode(data).decode()],
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def test_a_dropped_non_zip_and_a_network_failure_are_shown_in_words(stack: Stack, page: Page) -> None:
    from playwright.sync_api import expect

    notes = b"field notes from the survey, not a zip\n" * 20
    direct = httpx.post(f"{stack.api_url}/api/upload", files={"file": ("notes.txt", notes)})
    assert direct.status_code == 400
    page.goto(f"{stack.api_url}/")
    expect(page.locator("#error")).to_be_hidden()
    drop(page, "notes.txt", notes)
    expect(page.locator("#error")).to_have_text(direct.json()["detail"])
    expect(page.locator("#job")).to_be_hidden()

    page.route("**/api/upload", lambda route: route.abort("connectionrefused"))
    page.set_input_files("#file", file_payload("scenes.zip", zip_of({"a.png": b"x"})))
    expect(page.locator("#error")).to_contain_text("Network error")
    expect(page.locator("#job")).to_be_hidden()


def test_upload_progress_gallery_lightbox_countdown_and_download(
    long_lived_archives: Stack, page: Page, make_sar: MakeSar, encode: Encode, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    stack = long_lived_archives
    shapes = [(256, 256), (256, 256), (200, 320), (256, 256), (320, 240), (256, 256)]
    images = {
        f"pass_{i // 3 + 1}/scene_{i + 1:02d}.{'jpg' if i % 2 else 'png'}": encode(
            make_sar(h, w, seed=10 + i), "JPEG" if i % 2 else "PNG"
        )
        for i, (h, w) in enumerate(shapes)
    }
    broken = encode(make_sar(64, 64, seed=1), "PNG")
    files = {**images, "pass_3/truncated.png": broken[: len(broken) // 2]}
    total = len(files)
    files["pass_3/notes.txt"] = b"acquisition notes, skipped by the server"

    problems: list[str] = []  # script errors, CSP violations, failed loads
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.goto(f"{stack.api_url}/")
    page.set_input_files("#file", file_payload("scenes.zip", zip_of(files)))
    expect(page.locator("#upload-progress")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#upload-label")).to_contain_text("100 %")
    expect(page.locator("#job-label")).to_have_text(f"{total} of {total} images", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-state")).to_have_text("completed")
    expect(page.locator("#job-failed")).to_have_text("1 failed")
    expect(page.locator("#errors li")).to_contain_text("pass_3/truncated.png")
    expect(page.locator("#skipped-title")).to_have_text("1 zip entry skipped")

    # The gallery: every overlay decoded by the browser, each with the oil fraction the API reports.
    page.wait_for_function(
        """n => [...document.querySelectorAll('#gallery img')]
                .filter(img => img.complete && img.naturalWidth > 0).length >= n""",
        arg=len(images),
    )
    href = page.locator("#download").get_attribute("href")
    assert href is not None
    user_hash = href.rsplit("/", 1)[-1]
    listing = httpx.get(f"{stack.api_url}/api/results/{user_hash}/images").json()
    ok = [i for i in listing["images"] if i["status"] == "ok"]
    assert sorted(i["name"] for i in ok) == sorted(images)
    for image in ok:
        tile = page.locator(f'#gallery figure[data-name="{image["name"]}"]')
        expect(tile.locator(".oil")).to_have_text(f"Oil {image['oil_fraction'] * 100:.2f} %")
        expect(tile).to_contain_text(f"{image['width']}{TIMES}{image['height']}")
    expect(page.locator("#gallery .tile.failed")).to_contain_text("pass_3/truncated.png")

    # The countdown runs down from the archive's time left.
    countdown = page.locator("#countdown")
    expect(countdown).to_have_text(re.compile(r"Archive deleted in \d+:\d\d"))
    minutes, seconds = map(int, countdown.inner_text().rsplit(" ", 1)[-1].split(":"))
    assert 0 < minutes * 60 + seconds <= 300  # conftest's LONG_TTL_SECONDS
    shown = countdown.inner_text()
    expect(countdown).not_to_have_text(shown, timeout=5_000)

    page.screenshot(path=str(tmp_path / "web_page.png"), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOT"):  # refresh the README's picture on demand only
        shutil.copyfile(tmp_path / "web_page.png", SCREENSHOT)

    # The lightbox shows the overlay at full size.
    first = ok[0]
    page.locator(f'#gallery figure[data-name="{first["name"]}"] button').click()
    expect(page.locator("#lightbox")).to_be_visible()
    expect(page.locator("#lightbox-caption")).to_contain_text(first["name"])
    page.wait_for_function("() => document.getElementById('lightbox-img').naturalWidth > 0")
    assert page.eval_on_selector("#lightbox-img", "img => img.naturalWidth") == first["width"]
    page.screenshot(path=str(tmp_path / "lightbox.png"))
    page.keyboard.press("Escape")
    expect(page.locator("#lightbox")).to_be_hidden()

    with page.expect_download() as download_info:
        page.locator("#download").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(download.path()) as archive:
        names = set(archive.namelist())
    masks = {n for n in names if n.startswith("masks/")}
    assert masks == {f"masks/{out}" for out in output_names(images).values()}
    assert {"report.json", "report.csv"} <= names
    assert problems == []


def test_the_page_shows_when_the_results_expire(
    stack: Stack, page: Page, make_sar: MakeSar, encode: Encode
) -> None:
    """With the stack's 6 s archives, the countdown ends in an expiry notice and the download is withdrawn."""
    from playwright.sync_api import expect

    page.goto(f"{stack.api_url}/")
    one = zip_of({"one.png": encode(make_sar(64, 64), "PNG")})
    page.set_input_files("#file", file_payload("one.zip", one))
    expect(page.locator("#countdown")).to_have_text(re.compile("Expired"), timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#download")).to_have_attribute("aria-disabled", "true")
    expect(page.locator("#job-state")).to_have_text("expired")
