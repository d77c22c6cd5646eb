"""The fetching stage's reads: only the windows of a scene that cover the bboxes, over HTTP range requests.

GDAL reads `/vsicurl/<url>` block by block with range requests (merged when consecutive, retried with a
delay), never lists the folder (GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR) and opens nothing but a GeoTIFF
(driver GTiff: a catalogue cannot make it parse a VRT or any other format). A projected COG (RTC) is read in
its own CRS, window by window; a GCP-georeferenced GRD goes through a WarpedVRT into the UTM zone of the
bbox, whose window pulls only the source blocks under it. Each window becomes a small GeoTIFF with its
georeference, what an analyst would have uploaded; the ML service segments it like any upload.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader, MemoryFile
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from backend.sources import netstats
from backend.sources.access import redact_library_logs
from backend.sources.request import BBox

LONLAT = CRS.from_epsg(4326)
redact_library_logs()  # GDAL's errors quote the URL, signature and all


class SceneReadError(Exception):
    """The scene cannot be read; str() is the reason (URLs still to be redacted by the caller)."""


@dataclass(frozen=True)
class WindowData:
    """One bbox's window of a scene, as GeoTIFF bytes."""

    tiff: bytes
    width: int
    height: int
    crs: str
    warped: bool  # read through a WarpedVRT (GCPs) rather than in the scene's own grid


def gdal_options(*, retries: int, retry_delay: float, timeout: int, extra: dict[str, str]) -> dict[str, Any]:
    """The GDAL config of a scene's reads: HTTP retries, merged ranges, no directory listing."""
    return {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MAX_RETRY": str(retries),
        "GDAL_HTTP_RETRY_DELAY": str(retry_delay),
        "GDAL_HTTP_TIMEOUT": str(timeout),
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIRANGE": "YES",
        "CPL_VSIL_NETWORK_STATS_ENABLED": "YES",
        "GDAL_PAM_ENABLED": "NO",
        "VSI_CACHE": "FALSE",
        **extra,
    }


def utm_for(bbox: BBox) -> CRS:
    """The UTM zone (WGS 84) of the bbox's centre: metres, pixels about as the scene's."""
    lon, lat = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    zone = min(60, math.floor((lon + 180) / 6) + 1)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def read_windows(
    url: str, bboxes: Sequence[BBox], *, max_pixels: int, options: dict[str, Any]
) -> list[WindowData | str]:
    """Per bbox, its window of the scene at `url` or why it has none (the scene misses it).

    SceneReadError if the scene cannot be opened or read at all, or its windows hold over `max_pixels`.
    """
    # GDAL keeps what /vsicurl/ learnt of a URL (its size, "not found", a 401) for the process's life: a
    # worker must not answer a scene that has appeared since, or a token that changed, from that memory.
    netstats.clear_cache()
    try:
        with rasterio.Env(**options), _open(url) as src:
            grids = [_grid(src, bbox) for bbox in bboxes]
            pixels = sum(w.width * w.height for _, w in grids if w is not None)
            if pixels > max_pixels:
                raise SceneReadError(
                    f"its windows hold {pixels} pixels, over AREA_SCENE_MAX_PIXELS = {max_pixels}"
                )
            out: list[WindowData | str] = []
            for (dataset, window), _bbox in zip(grids, bboxes, strict=True):
                if window is None:
                    out.append("the scene does not cover this bbox")
                    continue
                out.append(_read(dataset, window, warped=dataset is not src))
            for dataset, _ in grids:
                if dataset is not src:
                    dataset.close()
            return out
    except RasterioError as exc:
        raise SceneReadError(f"cannot read the scene: {exc}") from exc


@contextmanager
def _open(url: str) -> Iterator[DatasetReader]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        src = rasterio.open(f"/vsicurl/{url}", driver="GTiff")
    try:
        if src.count < 1:
            raise SceneReadError("the scene has no band")
        yield src
    finally:
        src.close()


def _grid(src: DatasetReader, bbox: BBox) -> tuple[DatasetReader | WarpedVRT, Window | None]:
    """The dataset to read the bbox from (the scene, or a warp of it) and the window there (None: outside)."""
    gcps, gcp_crs = src.gcps
    if src.crs is not None and not gcps:
        dataset: DatasetReader | WarpedVRT = src
    elif gcps and gcp_crs is not None:
        nodata = src.nodata if src.nodata is not None else 0
        dataset = WarpedVRT(
            src, crs=utm_for(bbox), nodata=nodata, resampling=rasterio.enums.Resampling.bilinear
        )
    else:
        raise SceneReadError("the scene has neither a CRS with a transform nor GCPs")
    bounds = transform_bounds(LONLAT, dataset.crs, *bbox, densify_pts=21)
    window = from_bounds(*bounds, transform=dataset.transform)
    window = window.round_offsets(op="floor").round_lengths(op="ceil")
    full = Window(0, 0, dataset.width, dataset.height)
    try:
        window = window.intersection(full)
    except rasterio.errors.WindowError:
        return dataset, None
    if window.width < 1 or window.height < 1:
        return dataset, None
    return dataset, window


def _read(dataset: DatasetReader | WarpedVRT, window: Window, *, warped: bool) -> WindowData:
    values = dataset.read(1, window=window)
    height, width = values.shape
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": values.dtype.name,
        "crs": dataset.crs,
        "transform": dataset.window_transform(window),
        "compress": "DEFLATE",
        "tiled": width >= 256 and height >= 256,
    }
    nodata = dataset.nodata
    if nodata is not None and not (
        isinstance(nodata, float) and np.isnan(nodata) and values.dtype.kind != "f"
    ):
        profile["nodata"] = nodata
    with MemoryFile(ext="tif") as memfile:
        with memfile.open(**profile) as dst:
            dst.write(values, 1)
        data = bytes(memfile.read())
    return WindowData(data, width, height, dataset.crs.to_string(), warped)
