"""One SAR scene, four processors' files: the same slick through the real pipeline (upload to archive)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from PIL import Image

if TYPE_CHECKING:
    from stack_harness import Stack

pytestmark = pytest.mark.e2e


def make_scene(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Speckled sea (grey ~110) with a dark slick ellipse (grey ~35): the image and the slick."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = (
        (xx - size * 0.5) * 0.9 + (yy - size * 0.5) * 0.42,
        -(xx - size * 0.5) * 0.42 + (yy - size * 0.5) * 0.9,
    )
    slick = (u / (0.35 * size)) ** 2 + (v / (0.09 * size)) ** 2 <= 1.0
    sea = 110.0 * rng.gamma(4.0, 1 / 4.0, size=(size, size))
    oil = 35.0 * rng.gamma(16.0, 1 / 16.0, size=(size, size))
    return np.clip(np.where(slick, oil, sea), 0, 255).astype(np.uint8), slick


def upload(stack: Stack, files: dict[str, bytes]) -> dict[str, Any]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    response = httpx.post(
        f"{stack.api_url}/api/upload", files={"file": ("s.zip", buffer.getvalue())}, timeout=60
    )
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def finished(stack: Stack, job_id: str) -> dict[str, Any]:
    """The job's status once it has ended (the long poll answers the moment it does)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(f"{stack.api_url}/api/status/{job_id}?wait=30", timeout=40).json()
        if body["state"] not in ("queued", "processing", "archiving"):
            return body
    pytest.fail(f"job {job_id} did not finish; worker log:\n{stack.log_tail('worker')}")


def tiff(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="TIFF")
    return buffer.getvalue()


def png(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def mask_of(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image) == 255


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_masks_agree_across_radiometry_and_nodata_is_never_oil(stack: Stack) -> None:
    grey, slick = make_scene(256, seed=21)
    db = (grey.astype(np.float32) / 255 * 25 - 25).astype(np.float32)  # the grey levels read as dB
    power = (10 ** (db / 10)).astype(np.float32)
    amplitude = np.round(np.sqrt(power) * 800).astype(np.uint16)
    bordered = amplitude.copy()
    bordered[:, :64] = 0  # a GRD nodata border
    files: dict[str, Callable[[], bytes]] = {
        "grey.png": lambda: png(grey),
        "amplitude.tif": lambda: tiff(amplitude),
        "sigma0_db.tif": lambda: tiff(db),
        "sigma0_linear.tif": lambda: tiff(power),
        "bordered.tif": lambda: tiff(bordered),
    }
    job = upload(stack, {name: make() for name, make in files.items()})
    final = finished(stack, job["job_id"])
    assert final["state"] == "completed" and final["failed"] == 0, final

    response = httpx.get(f"{stack.api_url}/api/download/{job['user_hash']}", timeout=60)
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        masks = {
            name: np.asarray(Image.open(io.BytesIO(archive.read(f"masks/{name.rsplit('.', 1)[0]}.png"))))
            == 255
            for name in files
        }
        report = {row["name"]: row for row in json.loads(archive.read("report.json"))["images"]}
    reference = masks["grey.png"]
    for name in ("grey.png", "amplitude.tif", "sigma0_db.tif", "sigma0_linear.tif"):
        oil = masks[name]
        assert (oil & slick).sum() / slick.sum() >= 0.7, f"{name}: found too little of the slick"
        assert (oil & ~slick).sum() / (~slick).sum() <= 0.1, f"{name}: flagged too much sea"
        assert iou(oil, reference) >= 0.9, f"{name} disagrees with the 8-bit PNG"
    assert not masks["bordered.tif"][:, :64].any()
    assert {name: row["scale"] for name, row in report.items()} == {
        "grey.png": "grey",
        "amplitude.tif": "amplitude",
        "sigma0_db.tif": "db",
        "sigma0_linear.tif": "power",
        "bordered.tif": "amplitude",
    }
    assert report["bordered.tif"]["valid_fraction"] == pytest.approx(0.75)
    assert report["grey.png"]["valid_fraction"] == 1.0
