"""Area jobs through the real stack: a STAC API and file server on loopback (tests/stac_server.py), the
search by pystac-client, windows read by GDAL over HTTP range requests, segmentation, the archive.

Two bboxes over two readable scenes (a projected COG, a GCP-georeferenced GRD), plus a scene whose file is
missing (404) and one that is not a TIFF: those two end in `errors`, the rest completes; a scene whose
window is all land (the ML service's land mask says) is not fetched, and reported. A catalogue that is
down is retried, then the job fails with the reason; a date with no scene ends failed, saying so.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import rasterio
from area_samples import (
    BBOX_1,
    BBOX_2,
    BBOX_LAND,
    SCENE_CORRUPT,
    SCENE_GRD,
    SCENE_LAND,
    SCENE_MISSING,
    SCENE_UTM,
    SECRET,
    source,
    stac_server,
)
from rasterio.io import MemoryFile
from shapely.geometry import box, shape
from shapely.ops import unary_union
from stack_harness import OPS_HEADERS, Stack, free_port

from backend.cli import main as cli
from backend.jobs.keys import job_key

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

AREA_SETTINGS = {
    "STAC_RETRIES": "2",
    "STAC_RETRY_BACKOFF_SECONDS": "0.2",
    "STAC_TIMEOUT_SECONDS": "5",
    "SCENE_HTTP_RETRIES": "1",
    "SCENE_HTTP_RETRY_DELAY_SECONDS": "0.2",
    "ARCHIVE_TTL_SECONDS": "300",  # the stack's 6 s would expire the archive under the test
}


@pytest.fixture(scope="module")
def area_stack(
    stack_base: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, dict[str, int]]]:
    """The stack whose API and worker know the sources "test" (the loopback STAC API) and "down"."""
    with stac_server(tmp_path_factory.mktemp("stac")) as (url, sizes):
        sources = {"test": source(url), "down": source(f"http://127.0.0.1:{free_port()}")}
        env = AREA_SETTINGS | {"AREA_SOURCES": json.dumps(sources)}
        stack_base.start_all()
        stack_base.stop("api")
        stack_base.stop("worker")
        stack_base.start("api", "worker", **env)
        try:
            yield stack_base, sizes
        finally:
            stack_base.stop("api")
            stack_base.stop("worker")
            stack_base.start("api", "worker")


def ask(stack: Stack, **body: Any) -> dict[str, Any]:
    request = {
        "bboxes": [BBOX_1, BBOX_2],
        "date": "2026-06-01",
        "temporal_tolerance": 1,
        "data_source": "test",
    }
    response = httpx.post(f"{stack.api_url}/api/area-jobs", json=request | body, timeout=30)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def follow(stack: Stack, job: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    """Poll the status until the job ends; its last status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = httpx.get(f"{stack.api_url}{job['status_url']}?wait=5", timeout=10).json()
        if status["state"] in ("completed", "failed", "expired"):
            return status
    raise AssertionError(f"job did not end in {timeout} s")


@contextlib.contextmanager
def states_announced(stack: Stack) -> Iterator[Callable[[str], list[str]]]:
    """Every state any job enters while in the block, as the job store publishes them: job id -> states."""
    pubsub = stack.redis().pubsub()
    pubsub.psubscribe(job_key("*", ":state"))
    seen: dict[str, list[str]] = {}

    def states(job_id: str) -> list[str]:
        while (message := pubsub.get_message(timeout=0.5)) is not None:
            if message["type"] == "pmessage":
                seen.setdefault(message["channel"].split(":")[2], []).append(message["data"])
        return seen.get(job_id, [])

    try:
        yield states
    finally:
        pubsub.close()


def test_two_bboxes_two_scenes_one_missing_one_corrupt(area_stack: tuple[Stack, dict[str, int]]) -> None:
    stack, sizes = area_stack
    with states_announced(stack) as states:
        job = ask(stack, bboxes=[BBOX_1, BBOX_2, BBOX_LAND], max_scenes=4)
        status = follow(stack, job)
        assert states(job["job_id"]) == ["searching", "fetching", "processing", "archiving", "completed"], (
            status
        )
    assert status["state"] == "completed", status
    area = status["area"]
    assert status["kind"] == "area"
    # EW and HH-only items are left out by the search; the one over land (the closest in time) is not
    # fetched and takes no place among max_scenes; four scenes remain, two unreadable.
    assert (area["scenes_found"], area["scenes_fetched"], area["scenes_failed"], area["windows"]) == (
        4,
        4,
        2,
        2,
    )
    assert (area["scenes_on_land"], area["sea_check"]) == (1, "done"), area
    # Range requests: only a part of the two readable files came over the wire.
    assert 0 < area["bytes_read"] < 0.8 * (sizes["utm.tif"] + sizes["grd.tif"]), area
    errors = {e["name"].split("/")[0]: e["error"] for e in status["errors"]}
    assert set(errors) == {SCENE_MISSING, SCENE_CORRUPT}, status["errors"]
    assert "404" in errors[SCENE_MISSING]
    assert "TIFF" in errors[SCENE_CORRUPT]
    assert (status["total"], status["done"], status["failed"]) == (4, 2, 2)
    assert SECRET not in json.dumps(status)

    archive = httpx.get(f"{stack.api_url}{job['download_url']}", timeout=30)
    assert archive.status_code == 200
    zf = zipfile.ZipFile(io.BytesIO(archive.content))
    names = set(zf.namelist())
    for scene, bbox in ((SCENE_UTM, 1), (SCENE_GRD, 2)):
        stem = f"{scene}/bbox{bbox}"
        assert {
            f"masks/{stem}.png",
            f"masks/{stem}.tif",
            f"slicks/{stem}.geojson",
            f"overlays/{stem}.png",
        } <= names
    scenes = {s["item_id"]: s for s in json.loads(zf.read("scenes.json"))["scenes"]}
    assert set(scenes) == {SCENE_UTM, SCENE_GRD, SCENE_MISSING, SCENE_CORRUPT}
    assert scenes[SCENE_UTM]["datetime"] == "2026-06-01T02:41:07Z"
    assert scenes[SCENE_GRD]["platform"] == "sentinel-1b"
    assert scenes[SCENE_GRD]["footprint"]["type"] == "Polygon"
    assert scenes[SCENE_GRD]["windows"][0]["warped"] is True
    assert scenes[SCENE_UTM]["windows"][0]["warped"] is False
    assert scenes[SCENE_MISSING]["status"] == "failed"
    manifest = json.loads(zf.read("scenes.json"))
    assert manifest["sea_check"] == "done"
    assert [(s["item_id"], s["bboxes"], s["bboxes_on_land"]) for s in manifest["scenes_on_land"]] == [
        (SCENE_LAND, [], [2])
    ]
    assert SECRET not in zf.read("scenes.json").decode()
    # The COG masks keep the windows' georeference: inside their bboxes, give or take a pixel.
    for scene, bbox in ((SCENE_UTM, BBOX_1), (SCENE_GRD, BBOX_2)):
        with (
            MemoryFile(zf.read(f"masks/{scene}/bbox{1 if bbox == BBOX_1 else 2}.tif")) as mem,
            mem.open() as cog,
        ):
            assert cog.crs.to_epsg() == 32639
            west, _, _, north = rasterio.warp.transform_bounds(cog.crs, "EPSG:4326", *cog.bounds)
            assert abs(west - bbox[0]) < 0.001 and abs(north - bbox[3]) < 0.001, (west, north, bbox)
    # One slicks.geojson, every slick inside the bboxes; the synthetic slicks are found.
    slicks = json.loads(zf.read("slicks.geojson"))
    inside = unary_union([box(*BBOX_1), box(*BBOX_2)]).buffer(1e-9)
    assert slicks["features"], "the dark slicks were not found"
    for feature in slicks["features"]:
        assert inside.contains(shape(feature["geometry"])), feature["id"]
    images = {f["properties"]["image"].split("/")[0] for f in slicks["features"]}
    assert images == {SCENE_UTM, SCENE_GRD}
    report = json.loads(zf.read("report.json"))
    assert {i["name"] for i in report["images"] if i["status"] == "failed"} == {
        f"{SCENE_MISSING}/bbox1.tif",
        f"{SCENE_CORRUPT}/bbox1.tif",
    }
    # Operators see the area job beside the uploads.
    tasks = httpx.get(f"{stack.api_url}/api/tasks", headers=OPS_HEADERS, timeout=10).json()["items"]
    assert any(t["job_id"] == job["job_id"] and t["kind"] == "area" for t in tasks)
    log = Path(stack.log_path("worker")).read_text(errors="replace")
    assert SECRET not in log
    assert f"job {job['job_id']} scene_failed scene={SCENE_MISSING}" in log
    assert f"job {job['job_id']} scene_on_land scene={SCENE_LAND}" in log


def test_catalogue_down_is_retried_then_fails_with_the_reason(
    area_stack: tuple[Stack, dict[str, int]],
) -> None:
    stack, _ = area_stack
    status = follow(stack, ask(stack, data_source="down"), timeout=60)
    assert status["state"] == "failed"
    reason = status["area"]["reason"]
    assert reason.startswith("search failed: STAC API") and "after 3 attempts" in reason, reason
    assert "Connection" in reason, reason
    log = Path(stack.log_path("worker")).read_text(errors="replace")
    assert "STAC search attempt 2 of 3 failed" in log


def test_no_scene_found_ends_failed_saying_so(area_stack: tuple[Stack, dict[str, int]]) -> None:
    stack, _ = area_stack
    status = follow(stack, ask(stack, date="2025-01-10"), timeout=60)
    assert status["state"] == "failed"
    assert status["area"]["reason"].startswith("no scene found: no Sentinel-1 IW scene"), status
    assert status["area"]["scenes_found"] is None and status["total"] == 0
    assert httpx.get(f"{stack.api_url}{status['download_url']}", timeout=10).status_code in (404, 409, 410)


def test_scenes_all_on_land_end_failed_saying_so(area_stack: tuple[Stack, dict[str, int]]) -> None:
    stack, _ = area_stack
    status = follow(stack, ask(stack, bboxes=[BBOX_LAND]), timeout=60)
    assert status["state"] == "failed"
    reason = status["area"]["reason"]
    assert reason == "no scene found: the 1 scenes found cover only land inside the bboxes", status
    assert status["area"]["scenes_on_land"] == 1 and status["total"] == 0 and status["errors"] == []


def test_cli_area_follows_the_stages_and_saves_the_archive(
    area_stack: tuple[Stack, dict[str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack, _ = area_stack
    out = tmp_path / "area.zip"
    args = ["--api", stack.api_url, "area", "--bbox", ",".join(map(str, BBOX_2)), "--date", "2026-06-02"]
    code = cli.main([*args, "--tolerance", "0", "--source", "test", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured
    assert re.search(r"1 scenes found, 1 read \([0-9.]+ [KM]B downloaded\), 0 failed", captured.out), (
        captured.out
    )
    assert "1 of 1 windows segmented, 0 failed" in captured.out
    assert f"slicks/{SCENE_GRD}/bbox1.geojson" in zipfile.ZipFile(out).namelist()
    # A date without scenes: exit code 1 and the reason; a bad bbox: refused (4) with the API's detail.
    assert cli.main([*args[:-1], "2025-01-10", "--source", "test", "--wait"]) == 1
    assert "failed: no scene found" in capsys.readouterr().out
    assert (
        cli.main(
            ["--api", stack.api_url, "area", "--bbox", "2,1,1,2", "--date", "2026-06-02", "--source", "test"]
        )
        == 4
    )
    assert "min_lon must be below max_lon" in capsys.readouterr().err


def test_web_page_draws_a_box_and_follows_an_area_job(
    area_stack: tuple[Stack, dict[str, int]], page: Page
) -> None:
    from playwright.sync_api import expect

    stack, _ = area_stack
    page.goto(stack.api_url)
    expect(page.locator("#area-source option")).to_have_count(2)  # "down" and "test", sorted
    page.select_option("#area-source", "test")
    # A box drawn with the mouse on the world view: far over MAX_AREA_KM2, refused with the API's words.
    page.click("#area-draw")
    frame = page.locator("#area-map").bounding_box()
    assert frame is not None
    page.mouse.move(frame["x"] + 100, frame["y"] + 80)
    page.mouse.down()
    page.mouse.move(frame["x"] + 160, frame["y"] + 130, steps=5)
    page.mouse.up()
    west, south, east, north = map(float, page.input_value("#area-bbox").split(","))
    assert west < east and south < north
    expect(page.locator("#area-map path.leaflet-interactive")).to_have_count(1)
    page.fill("#area-date", "2026-06-02")
    page.fill("#area-tolerance", "0")
    page.click("#area-submit")
    expect(page.locator("#error")).to_contain_text("over MAX_AREA_KM2")
    # A typed box over the GRD: followed to the end, its window on the map and in the slick list.
    page.fill("#area-bbox", ",".join(map(str, BBOX_2)))
    page.click("#area-submit")
    expect(page.locator("#job-state")).to_have_text("completed", timeout=120_000)
    expect(page.locator("#job-label")).to_have_text("1 of 1 window")
    expect(page.locator("#download")).to_have_attribute("aria-disabled", "false")
    expect(page.locator("#slick-rows tr").first).to_be_visible()
    # How a stage reads while the job is in it (the page polls once a second: too slow to catch each one).
    label = page.evaluate(
        "areaLabel({state: 'fetching', total: 0, done: 0, failed: 0,"
        " area: {scenes_found: 4, scenes_fetched: 2, bytes_read: 2048}})"
    )
    assert label == "fetching: 2 of 4 scenes, 2.0 KB read"
    label = page.evaluate(
        "areaLabel({state: 'fetching', total: 0, done: 0, failed: 0,"
        " area: {scenes_found: 4, scenes_fetched: 2, scenes_on_land: 1, bytes_read: 2048}})"
    )
    assert label == "fetching: 2 of 4 scenes (1 more on land, not read), 2.0 KB read"
    # A date without scenes: the page says why the job failed.
    page.fill("#area-date", "2025-01-10")
    page.click("#area-submit")
    expect(page.locator("#job-state")).to_have_text("failed", timeout=60_000)
    expect(page.locator("#error")).to_contain_text("no scene found")
