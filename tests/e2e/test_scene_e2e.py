"""A scene over the old limits through the real stack by the windowed path (issue 17).

The scene is bench/scene_file.py's GRD-like generator, small and mostly nodata so the test stays fast:
3,000 x 2,400 uint16 amplitude, 10 m UTM pixels, a dark ellipse at sea. The stack's limits are lowered so
that the old path could not take it (ML_MAX_PIXELS and the worker's MAX_IMAGE_PIXELS 4 M pixels, a 2 MB
ML body limit), and SCENE_MIN_MB=1 sends it by path: the worker extracts it under results/, the ML
service reads it there window by window at ML_SCENE_RESOLUTION_M=20 (decimation 2). The archive must hold
a 20 m COG mask with the scene's CRS and the transform scaled by 2, the same values as the PNG mask, the
border as nodata, and one slick where the ellipse is, with about its area.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.io import MemoryFile
from shapely.geometry import Point, shape

from bench.scene_file import CRS, SceneSpec, Slick, write_scene_tif

if TYPE_CHECKING:
    from stack_harness import Stack

pytestmark = pytest.mark.e2e

HEIGHT, WIDTH = 3000, 2400
SLICK = Slick(WIDTH * 0.5, HEIGHT * 0.5, 300, 70, 30)
LIMITS = {"ML_MAX_PIXELS": "4000000", "ML_MAX_BODY_MB": "2", "ML_SCENE_RESOLUTION_M": "20"}
WORKER = {"SCENE_MIN_MB": "1", "MAX_IMAGE_PIXELS": "4000000"}


@pytest.fixture
def scene_stack(stack: Stack) -> Iterator[Stack]:
    """The stack with the ML service and the worker restarted under the lowered limits, restored after."""
    stack.stop("ml")
    stack.stop("worker")
    stack.start("ml", **LIMITS)
    stack.start("worker", **WORKER)
    yield stack
    stack.stop("ml")
    stack.stop("worker")


def test_a_scene_over_the_old_limits_goes_by_path_and_comes_back_georeferenced(
    scene_stack: Stack, tmp_path: Path
) -> None:
    spec = SceneSpec(HEIGHT, WIDTH, [SLICK], nodata_share=0.3, land=False, overviews=False)
    tif = tmp_path / "scene.tif"
    write_scene_tif(spec, tif)
    assert tif.stat().st_size > 2 * 1024 * 1024 and HEIGHT * WIDTH > 4_000_000  # over the old path's limits
    upload = tmp_path / "upload.zip"
    with zipfile.ZipFile(upload, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(tif, "S1A_IW_GRDH/measurement/vv.tiff")

    api = scene_stack.api_url
    with upload.open("rb") as file:
        answer = httpx.post(f"{api}/api/upload", files={"file": ("scene.zip", file)}, timeout=60)
    assert answer.status_code == 202, answer.text
    job_id, user_hash = answer.json()["job_id"], answer.json()["user_hash"]
    deadline = time.monotonic() + 120
    while (state := httpx.get(f"{api}/api/status/{job_id}", timeout=10).json())["state"] not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    logs = f"{scene_stack.log_tail('worker')}\n{scene_stack.log_tail('ml')}"
    assert state["state"] == "completed", f"{state}\n{logs}"
    download = httpx.get(f"{api}/api/download/{user_hash}", timeout=60)
    assert download.status_code == 200, download.text
    assert "POST /segment/scene" in scene_stack.log_tail("ml", 400), logs
    work = scene_stack.results_dir / user_hash / "work"
    assert not work.exists() or not any(work.iterdir()), "the extracted scene must be deleted"

    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        report = json.loads(archive.read("report.json"))["images"]
        mask = np.asarray(Image.open(io.BytesIO(archive.read("masks/S1A_IW_GRDH/measurement/vv.png"))))
        cog = archive.read("masks/S1A_IW_GRDH/measurement/vv.tif")
        slicks = json.loads(archive.read("slicks/S1A_IW_GRDH/measurement/vv.geojson"))
    assert [image["status"] for image in report] == ["ok"], report
    assert mask.shape == (HEIGHT // 2, WIDTH // 2)

    transform = spec.transform()
    with MemoryFile(cog) as memfile, memfile.open() as src:
        assert (src.width, src.height) == (WIDTH // 2, HEIGHT // 2)
        assert src.crs == rasterio.crs.CRS.from_string(CRS)
        assert src.transform.almost_equals(transform @ rasterio.Affine.scale(2))
        values, valid = src.read(1), src.read_masks(1) != 0
    assert np.array_equal(values, mask)
    assert set(np.unique(values)) <= {0, 255}
    # The slanted nodata border (30 % of the width on each side at the widest) is nodata in the COG mask.
    assert not valid[:, :10].any() and not valid[:, -10:].any() and valid[:, WIDTH // 4].any()

    features = slicks["features"]
    assert len(features) == 1, [f["properties"] for f in features]
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(
        *(transform @ (SLICK.col, SLICK.row))
    )
    polygon = shape(features[0]["geometry"])
    assert polygon.contains(Point(lon, lat))
    truth_km2 = math.pi * SLICK.a * SLICK.b * 100 / 1e6  # 10 m pixels
    assert 0.7 * truth_km2 < features[0]["properties"]["area_km2"] < 1.4 * truth_km2
