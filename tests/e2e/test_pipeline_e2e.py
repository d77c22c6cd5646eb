"""Upload -> Celery chord -> ML service -> archive -> expiry, through real processes (tests/conftest.py)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import time
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from PIL import Image

from backend.storage.layout import is_token, new_token

if TYPE_CHECKING:
    from stack_harness import Stack

pytestmark = pytest.mark.e2e

Encode = Callable[[np.ndarray, str], bytes]
MakeSar = Callable[..., np.ndarray]


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def upload(stack: Stack, files: dict[str, bytes]) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.api_url}/api/upload", files={"file": ("scenes.zip", zip_of(files))}, timeout=60
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def status(stack: Stack, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.api_url}/api/status/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_until_finished(stack: Stack, job_id: str, timeout: float = 90) -> list[dict[str, Any]]:
    """Poll the status until the job leaves the active states; returns every status seen."""
    seen = [status(stack, job_id)]
    deadline = time.monotonic() + timeout
    while seen[-1]["state"] in ("queued", "processing", "archiving"):
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {seen[-1]}; worker log:\n{stack.log_tail('worker')}")
        time.sleep(0.1)
        seen.append(status(stack, job_id))
    return seen


def wait_for_expiry(stack: Stack, user_hash: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{stack.api_url}/api/download/{user_hash}").status_code != 410:
        if time.monotonic() > deadline:
            pytest.fail(f"{user_hash} not expired; worker log:\n{stack.log_tail('worker')}")
        time.sleep(0.25)
    # The API answers 410 as soon as the expiry time passes; the files go when the timer or the sweeper runs.
    while (stack.results_dir / user_hash).exists():
        if time.monotonic() > deadline:
            pytest.fail(f"files of {user_hash} still there; worker log:\n{stack.log_tail('worker')}")
        time.sleep(0.25)


def download(stack: Stack, user_hash: str) -> zipfile.ZipFile:
    response = httpx.get(f"{stack.api_url}/api/download/{user_hash}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    assert ".zip" in response.headers["content-disposition"]
    return zipfile.ZipFile(io.BytesIO(response.content))


def truncated_png(make_sar: MakeSar, encode: Encode) -> bytes:
    data = encode(make_sar(64, 64, seed=9), "PNG")
    return data[: len(data) // 2]


def test_upload_segment_download_and_expire(stack: Stack, make_sar: MakeSar, encode: Encode) -> None:
    sizes = {  # name -> (height, width, format); nested folders, a name shared by two folders,
        # two inputs differing only by extension, and every supported flavour of image
        "scenes/a/tile.png": (256, 256, "PNG"),
        "scenes/b/tile.png": (256, 256, "PNG"),
        "wide.jpg": (650, 1250, "JPEG"),
        "odd.jpg": (200, 300, "JPEG"),
        "odd.png": (200, 300, "RGBA"),
        "deep/er/t16.tif": (200, 300, "TIFF16"),
    }
    files = {name: encode(make_sar(h, w, seed=i), fmt) for i, (name, (h, w, fmt)) in enumerate(sizes.items())}
    files["notes.txt"] = b"not an image"
    files["broken.png"] = truncated_png(make_sar, encode)
    expected_out = {
        "scenes/a/tile.png": "scenes/a/tile.png",
        "scenes/b/tile.png": "scenes/b/tile.png",
        "wide.jpg": "wide.png",
        "odd.jpg": "odd.jpg.png",
        "odd.png": "odd.png.png",
        "deep/er/t16.tif": "deep/er/t16.png",
    }

    job = upload(stack, files)
    job_id, user_hash = job["job_id"], job["user_hash"]
    assert is_token(job_id) and is_token(user_hash) and job_id != user_hash
    assert job["status_url"] == f"/api/status/{job_id}"
    assert job["download_url"] == f"/api/download/{user_hash}"
    skipped = {s["name"]: s["reason"] for s in job["skipped"]}
    assert "notes.txt" in skipped
    broken_skipped = "broken.png" in skipped
    assert job["images"] == len(sizes) + (0 if broken_skipped else 1)

    # Still running: nothing to download yet, and the time-left endpoint says so too.
    early = httpx.get(f"{stack.api_url}/api/download/{user_hash}")
    assert early.status_code == 409, early.text
    assert httpx.get(f"{stack.api_url}/api/archive_time_left/{user_hash}").status_code == 409

    seen = wait_until_finished(stack, job_id)
    done_values = [s["done"] + s["failed"] for s in seen]
    assert done_values == sorted(done_values), "progress must never go backwards"
    assert seen[0]["state"] in ("queued", "processing") and done_values[0] < job["images"]
    final = seen[-1]
    assert final["state"] == "completed"
    assert (final["total"], final["done"]) == (job["images"], len(sizes))
    if not broken_skipped:  # let through by the upload checks: the pipeline must record its failure
        assert final["failed"] == 1 and [e["name"] for e in final["errors"]] == ["broken.png"]
    assert final["finished_at"] and final["expires_at"]

    model = httpx.get(f"{stack.ml_url}/model").json()
    with download(stack, user_hash) as archive:
        names = set(archive.namelist())
        expected = {f"{kind}/{out}" for out in expected_out.values() for kind in ("masks", "overlays")}
        expected |= {f"slicks/{out.removesuffix('.png')}.geojson" for out in expected_out.values()}
        assert names == expected | {"report.json", "report.csv", "slicks.geojson", "slicks.csv"}
        report = json.loads(archive.read("report.json"))
        rows = {row["name"]: row for row in csv.DictReader(io.StringIO(archive.read("report.csv").decode()))}
        by_name = {image["name"]: image for image in report["images"]}
        for name, (h, w, _) in sizes.items():
            out = expected_out[name]
            with Image.open(io.BytesIO(archive.read(f"masks/{out}"))) as im:
                assert im.mode == "L" and im.size == (w, h), name
                mask = np.asarray(im)
            with Image.open(io.BytesIO(archive.read(f"overlays/{out}"))) as im:
                assert im.mode == "P" and im.size == (w, h), name  # palette: grey, and red-tinted oil
            assert set(np.unique(mask)) <= {0, 255}, name
            oil = int(np.count_nonzero(mask == 255))
            entry = by_name[name]
            assert (entry["status"], entry["output"], entry["width"], entry["height"]) == ("ok", out, w, h)
            assert entry["oil_pixels"] == oil and entry["oil_fraction"] == pytest.approx(oil / (w * h))
            assert rows[name]["status"] == "ok" and int(rows[name]["oil_pixels"]) == oil
    assert report["job_id"] == job_id and report["model_version"] == model["version"]
    assert (report["total"], report["done"]) == (job["images"], len(sizes))
    if not broken_skipped:
        assert by_name["broken.png"]["status"] == "failed" and by_name["broken.png"]["error"]
        assert rows["broken.png"]["status"] == "failed"

    left = httpx.get(f"{stack.api_url}/api/archive_time_left/{user_hash}").json()
    assert 0 < left["seconds_left"] <= 6
    download(stack, user_hash).close()  # downloading again neither rebuilds nor extends
    assert (
        httpx.get(f"{stack.api_url}/api/archive_time_left/{user_hash}").json()["expires_at"]
        == left["expires_at"]
    )

    wait_for_expiry(stack, user_hash)
    assert httpx.get(f"{stack.api_url}/api/archive_time_left/{user_hash}").status_code == 410
    assert status(stack, job_id)["state"] == "expired"
    assert not (stack.results_dir / user_hash).exists()


def test_bad_and_unknown_tokens_are_404_and_create_nothing(stack: Stack) -> None:
    before = set(os.listdir(stack.results_dir)) if stack.results_dir.exists() else set()
    for token in ("nothex", "0" * 31, "F" * 32, new_token()):
        for path in (f"/api/status/{token}", f"/api/download/{token}", f"/api/archive_time_left/{token}"):
            response = httpx.get(f"{stack.api_url}{path}")
            assert response.status_code == 404, path
            assert isinstance(response.json()["detail"], str)
    after = set(os.listdir(stack.results_dir)) if stack.results_dir.exists() else set()
    assert after <= before


def test_expiry_happens_although_the_worker_holding_the_timer_was_killed(
    stack: Stack, make_sar: MakeSar, encode: Encode
) -> None:
    job = upload(stack, {"one.png": encode(make_sar(64, 64), "PNG")})
    assert wait_until_finished(stack, job["job_id"])[-1]["state"] == "completed"
    stack.kill_worker(signal.SIGKILL)  # its countdown delete task dies unacknowledged with it
    stack.start_worker()
    wait_for_expiry(stack, job["user_hash"])
    assert status(stack, job["job_id"])["state"] == "expired"
    # The timer only returns after the broker's visibility timeout: the beat sweeper did the deletion.
    assert "Task backend.tasks.delete_results[" not in stack.log_tail("worker", lines=10_000)


def start_big_job(stack: Stack, make_sar: MakeSar, encode: Encode, images: int = 6) -> dict[str, Any]:
    """A job of large images, returned once a worker is busy on it."""
    job = upload(stack, {f"big{i}.png": encode(make_sar(650, 1250, seed=i), "PNG") for i in range(images)})
    deadline = time.monotonic() + 60
    while status(stack, job["job_id"])["state"] == "queued":
        assert time.monotonic() < deadline, stack.log_tail("worker")
        time.sleep(0.05)
    return job


def assert_all_segmented(stack: Stack, job: dict[str, Any], images: int = 6) -> None:
    final = wait_until_finished(stack, job["job_id"])[-1]
    assert final["state"] == "completed", final
    assert (final["done"], final["failed"]) == (images, 0), final
    with download(stack, job["user_hash"]) as archive:
        report = json.loads(archive.read("report.json"))
        assert {f"masks/big{i}.png" for i in range(images)} <= set(archive.namelist())
    assert [image["status"] for image in report["images"]] == ["ok"] * images


def test_pool_processes_killed_mid_job_lose_no_image(stack: Stack, make_sar: MakeSar, encode: Encode) -> None:
    job = start_big_job(stack, make_sar, encode)
    killed = stack.worker_children()
    for pid in killed:  # both pool processes die mid-image; the worker requeues their tasks at once
        os.kill(pid, signal.SIGKILL)
    assert_all_segmented(stack, job)
    assert not set(killed) & set(stack.worker_children())
    assert "WorkerLostError" in stack.log_tail("worker", lines=10_000)


def test_whole_worker_killed_mid_job_loses_no_image(stack: Stack, make_sar: MakeSar, encode: Encode) -> None:
    job = start_big_job(stack, make_sar, encode)
    stack.kill_worker(signal.SIGKILL)  # nothing acknowledged: the messages stay in the broker's unacked set
    time.sleep(1)
    assert status(stack, job["job_id"])["done"] < 6
    try:
        # Unacked messages return after the visibility timeout (20 min by default): shorten it here.
        stack.start_worker(VISIBILITY_TIMEOUT_SECONDS="3")
        assert_all_segmented(stack, job)
    finally:
        stack.kill_worker(signal.SIGTERM)
        stack.start_worker()
