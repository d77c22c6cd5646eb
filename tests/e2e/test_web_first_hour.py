"""What a new user trips over on the page (issue 18), in a real Chromium against the real stack: the job's
link (copy, reload, another browser), the gallery's order, its overlay/picture toggle, full names on hover
and the warning on an image that came back almost all oil; folder entries not counted as skipped; colliding
names (a.png, a.jpg, a.tif, A.PNG) the same in the report as in the archive, under one download name."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from PIL import Image

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route
    from stack_harness import Stack

pytestmark = pytest.mark.e2e

JOB_TIMEOUT_MS = 120_000
LONG_NAME = "sos/" + "S1A_IW_GRDH_1SDV_20240101T000000_long_scene_name_" * 3 + "VV.png"
# Red pixels of an <img> on the page (the overlay's tint), counted through a canvas.
COUNT_RED = """img => {
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext('2d');
    context.drawImage(img, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let red = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] > data[i + 1] + 4) red += 1;
    return red;
}"""


def scene(size: int, slick: float, seed: int) -> np.ndarray:
    """Speckled sea with a dark slick ellipse `slick` times the usual size (0: none)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    inside = ((xx - size / 2) / (0.35 * size * slick + 1e-9)) ** 2 + (
        (yy - size / 2) / (0.09 * size * slick + 1e-9)
    ) ** 2 <= 1
    sea = 110.0 * rng.gamma(4.0, 1 / 4.0, size=(size, size))
    oil = 35.0 * rng.gamma(16.0, 1 / 16.0, size=(size, size))
    return np.clip(np.where(inside, oil, sea), 0, 255).astype(np.uint8)


def encoded(gray: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format=fmt)
    return buffer.getvalue()


def upload_zip() -> tuple[bytes, list[str]]:
    """The zip, with a folder record and a text file, and its image names."""
    images = {
        "sos/calm.png": encoded(scene(256, 0, 1), "PNG"),
        "sos/small.png": encoded(scene(256, 0.6, 2), "PNG"),
        "sos/big.png": encoded(scene(256, 1.6, 3), "PNG"),
        LONG_NAME: encoded(scene(256, 1.0, 4), "PNG"),
        "a.png": encoded(scene(256, 1.0, 5), "PNG"),
        "a.jpg": encoded(scene(256, 1.0, 6), "JPEG"),
        "a.tif": encoded(scene(256, 1.0, 7), "TIFF"),
        "A.PNG": encoded(scene(256, 1.0, 8), "PNG"),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("sos/"), b"")  # what zip -r writes for a folder
        for name, data in images.items():
            archive.writestr(name, data)
        archive.writestr("sos/notes.txt", b"field notes")
    return buffer.getvalue(), list(images)


def watch(page: Page, origin: str) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    away: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    local = (origin, "blob:", "data:")  # blob: the pictures the page computes itself
    page.on("request", lambda request: request.url.startswith(local) or away.append(request.url))
    return problems, away


def shown_names(page: Page) -> list[str]:
    return page.eval_on_selector_all("#gallery figure", "tiles => tiles.map(t => t.dataset.name)")


def test_first_hour_on_the_page(long_lived_archives: Stack, page: Page) -> None:
    from playwright.sync_api import expect

    stack = long_lived_archives
    api = stack.api_url
    problems, away = watch(page, api)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=api)
    data, names = upload_zip()
    page.goto(f"{api}/")
    page.set_input_files("#file", {"name": "scenes.zip", "mimeType": "application/zip", "buffer": data})
    expect(page.locator("#skipped-title")).to_have_text("1 zip entry skipped")  # notes.txt, not the folder
    expect(page.locator("#job-state")).to_have_text("completed", timeout=JOB_TIMEOUT_MS)

    # 1. The link: shown, copied, warned about; the page's own address.
    job_id = page.locator("#job-id").inner_text()
    expect(page.locator("#download")).to_have_attribute("aria-disabled", "false")
    href = page.locator("#download").get_attribute("href")
    assert href is not None
    user_hash = href.rsplit("/", 1)[-1]
    link = f"{api}/#job={job_id}&key={user_hash}"
    expect(page.locator("#job-link")).to_have_value(link)
    assert page.url == link
    expect(page.locator("#job-link-box .warning")).to_contain_text("Whoever has this link can download")
    page.locator("#job-link-copy").click()
    expect(page.locator("#job-link-copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link

    # 8. The gallery: sorted by oil fraction, or by name; full names on hover.
    page.wait_for_function("n => document.querySelectorAll('#gallery figure').length >= n", arg=len(names))
    listing = httpx.get(f"{api}/api/results/{user_hash}/images").json()
    fraction = {image["name"]: image["oil_fraction"] for image in listing["images"]}
    assert sorted(fraction) == sorted(names) and fraction["sos/big.png"] > fraction["sos/small.png"]
    page.select_option("#gallery-sort", "oil-desc")
    shown = [fraction[name] for name in shown_names(page)]
    assert shown == sorted(shown, reverse=True)
    page.select_option("#gallery-sort", "oil-asc")
    shown = [fraction[name] for name in shown_names(page)]
    assert shown == sorted(shown) and shown_names(page)[0] == "sos/calm.png"
    page.select_option("#gallery-sort", "name")
    assert shown_names(page) == sorted(names)
    long_tile = page.locator("#gallery figure").filter(has=page.get_by_text(LONG_NAME, exact=True))
    assert long_tile.get_attribute("title") == LONG_NAME
    assert long_tile.locator(".tile-name").evaluate("el => el.scrollWidth > el.clientWidth")  # cut on screen

    # 8. Overlay or picture: the picture is the overlay without its red, computed in the page.
    big = page.locator('#gallery figure[data-name="sos/big.png"] img')
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=big.element_handle())
    assert big.evaluate(COUNT_RED) > 100
    page.locator("#show-picture").click()
    expect(page.locator("#show-picture")).to_have_attribute("aria-pressed", "true")
    expect(big).to_have_attribute("src", re.compile("^blob:"))
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=big.element_handle())
    assert big.evaluate(COUNT_RED) == 0
    page.locator("#show-overlay").click()
    expect(big).to_have_attribute("src", re.compile(f"/api/results/{user_hash}/overlays/"))

    # 8. An image that came back almost all oil carries a warning (the listing says so here; real models
    # rarely oblige on purpose).
    def almost_all_oil(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        for image in body["images"]:
            if image["name"] == "sos/big.png":
                image["oil_fraction"] = 0.97
        route.fulfill(response=answer, body=json.dumps(body))

    page.route(re.compile(r"/api/results/[0-9a-f]{32}/images$"), almost_all_oil)

    # 1. A reload keeps the job: progress, gallery, countdown, download, map notes.
    page.reload()
    expect(page.locator("#job-state")).to_have_text("completed")
    expect(page.locator("#job-label")).to_have_text(f"{len(names)} of {len(names)} images")
    expect(page.locator("#gallery figure")).to_have_count(len(names))
    expect(page.locator("#countdown")).to_have_text(re.compile(r"Archive deleted in \d+:\d\d"))
    expect(page.locator("#download")).to_have_attribute("href", f"/api/download/{user_hash}")
    expect(page.locator("#not-georef-list")).to_contain_text("sos/big.png")
    suspect = page.locator('#gallery figure[data-name="sos/big.png"]')
    expect(suspect).to_have_class(re.compile(r"\bsuspect\b"))
    expect(suspect.locator(".tile-warning")).to_contain_text("Check the input's radiometry")
    expect(page.locator(".tile-warning")).to_have_count(1)
    page.unroute(re.compile(r"/api/results/[0-9a-f]{32}/images$"))

    # 1. The link in another browser (a new context: nothing kept) opens the same job; a wrong key does not.
    other = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        fresh = other.new_page()
        fresh.goto(link)
        expect(fresh.locator("#job-state")).to_have_text("completed")
        expect(fresh.locator("#gallery figure")).to_have_count(len(names))
        fresh.goto(f"{api}/#job={job_id}&key={'0' * 32}")
        expect(fresh.locator("#error")).to_contain_text("does not belong to its job")
        expect(fresh.locator("#gallery figure")).to_have_count(0)
    finally:
        other.close()

    # 6. and 4. The archive: one download name; the report's names are the zip's, its outputs the archive's.
    download = httpx.get(f"{api}{href}")
    assert download.status_code == 200
    assert f'filename="oilspill-{job_id}.zip"' in download.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        members = set(archive.namelist())
        report: dict[str, Any] = json.loads(archive.read("report.json"))
    outputs = {image["name"]: image["output"] for image in report["images"]}
    assert sorted(outputs) == sorted(names)
    assert all(f"masks/{out}" in members and f"overlays/{out}" in members for out in outputs.values())
    assert {name: outputs[name] for name in ("a.png", "a.jpg", "a.tif", "A.PNG")} == {
        "A.PNG": "A.PNG.png",
        "a.jpg": "a.jpg.png",
        "a.png": "a.png~2.png",
        "a.tif": "a.tif.png",
    }
    assert outputs["sos/big.png"] == "sos/big.png"
    assert problems == [] and away == []
