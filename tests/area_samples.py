"""Synthetic Sentinel-1 scenes and their STAC items for the area-job tests, and the STAC server serving them.

Two readable scenes over the Gulf, each 1024 x 1024 at ~10 m with a dark slick inside one bbox: a projected
float32 sigma0 COG (UTM 39N, like an RTC) under BBOX_1 and a GCP-georeferenced uint16 amplitude COG (like a
GRD) under BBOX_2. Beside them, items whose asset is missing (404) or not a TIFF, one in EW mode and one
without VV (both to be left out by the search), and one over inland Saudi Arabia (BBOX_LAND), whose windows
are all land: never to be read (its asset does not exist either). The server is tests/stac_server.py, a
real process.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import transform_bounds
from stack_harness import free_port, sar_scene, wait_for

SIZE = 1024
UTM = rasterio.Affine(10.0, 0.0, 549_600.0, 0.0, -10.0, 2_986_540.0)  # ~26.9-27.0 N, 51.5-51.6 E, at sea
GCP_ORIGIN, GCP_STEP = (51.2, 27.2), 1e-4  # the GRD's first pixel; degrees per pixel (~10 m)
BBOX_1 = (51.52, 26.93, 51.55, 26.96)  # inside the projected scene
BBOX_2 = (51.23, 27.14, 51.26, 27.17)  # inside the GRD
BBOX_LAND = (46.70, 24.50, 46.73, 24.53)  # inland Saudi Arabia, under SCENE_LAND only
COLLECTION = "sentinel-1-grd"
SECRET = "sig=SECRET-not-to-be-shown"
SCENE_UTM, SCENE_GRD = "S1A_IW_GRDH_1SDV_20260601T024107_UTM", "S1B_IW_GRDH_1SDV_20260602T140000_GCP"
SCENE_LAND = "S1A_IW_GRDH_1SDV_20260601T100000_LAND"  # its file does not exist: read, it would fail
SCENE_MISSING, SCENE_CORRUPT = (
    "S1A_IW_GRDH_1SDV_20260531T030000_MISSING",
    "S1A_IW_GRDH_1SDV_20260531T030500_CORRUPT",
)


def _with_slick(seed: int, centre: tuple[int, int]) -> np.ndarray:
    """Speckled sea grey levels with a 256 x 256 patch holding a dark slick centred at (row, col)."""
    grey = sar_scene(SIZE, SIZE, seed)
    patch = sar_scene(256, 256, seed + 1)
    row, col = centre[0] - 128, centre[1] - 128
    grey[row : row + 256, col : col + 256] = patch
    # Outside the patch: sea only (sar_scene's own slick ellipse would be cut by the bboxes' edges).
    sea = sar_scene(SIZE, SIZE, seed + 2)
    keep = np.zeros_like(grey, dtype=bool)
    keep[row : row + 256, col : col + 256] = True
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    ellipse_free = np.hypot(yy - SIZE / 2, xx - SIZE * 0.45) > SIZE * 0.4
    return np.where(keep, grey, np.where(ellipse_free, sea, np.roll(sea, SIZE // 2, axis=1)))


def _db(grey: np.ndarray) -> np.ndarray:
    return grey.astype(np.float32) / 255 * 25 - 25


def _write(path: Path, values: np.ndarray, **georef: Any) -> None:
    gcps = georef.pop("gcps", None)
    profile = {"driver": "COG", "width": SIZE, "height": SIZE, "count": 1, "dtype": values.dtype.name}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", BLOCKSIZE=256, COMPRESS="DEFLATE", **profile, **georef) as dst:
            if gcps:
                dst.gcps = (gcps, rasterio.crs.CRS.from_epsg(4326))
            dst.write(values, 1)


def _item(item_id: str, href: str, bounds: tuple[float, ...], when: str, **props: Any) -> dict[str, Any]:
    west, south, east, north = bounds
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    properties = {
        "datetime": when,
        "platform": "sentinel-1a" if item_id.startswith("S1A") else "sentinel-1b",
        "sar:instrument_mode": "IW",
        "sar:polarizations": ["VV", "VH"],
        "sat:orbit_state": "descending",
    } | props
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": COLLECTION,
        "bbox": list(bounds),
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": properties,
        "links": [],
        "assets": {"vv": {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized"}},
    }


def write_catalogue(folder: Path, base_url: str) -> dict[str, int]:
    """The scenes' files under folder/files and their items in folder/items.json; file name -> size."""
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    inverse = ~UTM
    x, y = rasterio.warp.transform(
        "EPSG:4326", "EPSG:32639", [(BBOX_1[0] + BBOX_1[2]) / 2], [(BBOX_1[1] + BBOX_1[3]) / 2]
    )
    col, row = inverse @ (x[0], y[0])
    power = (10 ** (_db(_with_slick(40, (int(row), int(col)))) / 10)).astype(np.float32)
    _write(files / "utm.tif", power, crs="EPSG:32639", transform=UTM)
    col2 = round(((BBOX_2[0] + BBOX_2[2]) / 2 - GCP_ORIGIN[0]) / GCP_STEP)
    row2 = round((GCP_ORIGIN[1] - (BBOX_2[1] + BBOX_2[3]) / 2) / GCP_STEP)
    amplitude = np.round(np.sqrt(10 ** (_db(_with_slick(50, (row2, col2))) / 10)) * 800).astype(np.uint16)
    gcps = [
        GroundControlPoint(
            row=r, col=c, x=GCP_ORIGIN[0] + c * GCP_STEP, y=GCP_ORIGIN[1] - r * GCP_STEP, z=0.0
        )
        for r in (0, SIZE // 2, SIZE)
        for c in (0, SIZE // 2, SIZE)
    ]
    _write(files / "grd.tif", amplitude, gcps=gcps)
    (files / "corrupt.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 64)
    utm_bounds = transform_bounds(
        "EPSG:32639", "EPSG:4326", *rasterio.transform.array_bounds(SIZE, SIZE, UTM)
    )
    grd_bounds = (
        GCP_ORIGIN[0],
        GCP_ORIGIN[1] - SIZE * GCP_STEP,
        GCP_ORIGIN[0] + SIZE * GCP_STEP,
        GCP_ORIGIN[1],
    )
    url = f"{base_url}/files"
    items = [
        _item(SCENE_UTM, f"{url}/utm.tif", utm_bounds, "2026-06-01T02:41:07Z"),
        _item(SCENE_GRD, f"{url}/grd.tif", grd_bounds, "2026-06-02T14:00:00Z"),
        _item(SCENE_LAND, f"{url}/land.tif?{SECRET}", (46.6, 24.4, 46.9, 24.7), "2026-06-01T10:00:00Z"),
        _item(SCENE_MISSING, f"{url}/missing.tif?{SECRET}", utm_bounds, "2026-05-31T03:00:00Z"),
        _item(SCENE_CORRUPT, f"{url}/corrupt.tif?{SECRET}", utm_bounds, "2026-05-31T03:05:00Z"),
        _item(
            "S1A_EW_GRDM_1SDH_EW",
            f"{url}/utm.tif",
            utm_bounds,
            "2026-06-01T03:00:00Z",
            **{"sar:instrument_mode": "EW"},
        ),
        _item(
            "S1A_IW_GRDH_1SDH_HH",
            f"{url}/utm.tif",
            utm_bounds,
            "2026-06-01T03:10:00Z",
            **{"sar:polarizations": ["HH"]},
        ),
    ]
    (folder / "items.json").write_text(json.dumps(items))
    return {path.name: path.stat().st_size for path in files.iterdir()}


@contextlib.contextmanager
def stac_server(folder: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """The STAC API and file server on a free loopback port: its URL and the files' sizes."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sizes = write_catalogue(folder, url)
    server = Path(__file__).with_name("stac_server.py")
    log = (folder / "stac.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(server), "--port", str(port), "--dir", str(folder)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: httpx.get(f"{url}/").status_code == 200, 30, "stac server", proc)
        yield url, sizes
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def source(url: str, collection: str = COLLECTION) -> dict[str, str]:
    return {"stac_url": f"{url}/", "collection": collection, "asset": "vv", "access": "https"}
