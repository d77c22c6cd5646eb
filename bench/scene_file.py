"""A Sentinel-1 GRD-like scene made in code, written strip by strip as a tiled GeoTIFF (COG-like) in a zip.

What a GRD VV measurement file holds (/work/shared/NOTES.md): uint16 amplitude numbers, sea in the low
hundreds, darkening from near to far range, 4-look speckle, 0 = nodata in slanted borders; here with land
where the GSHHG shoreline says land is (brighter, textured) and a few dark elliptic slicks at sea (-10 dB).
It is georeferenced by an affine UTM 39N transform at 10 m, over the Gulf between Qatar and Iran, and
written in strips of rows, so a 25,000 x 16,700 scene never exists whole in memory (~300 MB at a time).
Used by bench/scene.py (the full scene) and the end-to-end test of the scene path (a small one, at sea).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.transform import Affine

CRS = "EPSG:32639"
PIXEL_M = 10.0
ORIGIN_LONLAT = (50.6, 27.3)  # top-left corner: north of Qatar's tip; the scene reaches Qatar and Iran
STRIP_ROWS = 1024
LAND_STEP = 32  # the land mask is queried every LAND_STEP pixels, upsampled


@dataclass(frozen=True)
class Slick:
    """An elliptic slick in pixel coordinates of the full-resolution scene."""

    col: float
    row: float
    a: float
    b: float
    angle: float = 0.0

    def inside(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        t = np.deg2rad(self.angle)
        u = (cols - self.col) * np.cos(t) + (rows - self.row) * np.sin(t)
        v = -(cols - self.col) * np.sin(t) + (rows - self.row) * np.cos(t)
        return np.asarray((u / self.a) ** 2 + (v / self.b) ** 2 <= 1.0)


@dataclass(frozen=True)
class SceneSpec:
    height: int
    width: int
    slicks: Sequence[Slick]
    nodata_share: float = 0.12  # of the width, on each side, at the widest
    land: bool = True
    overviews: bool = True
    seed: int = 0
    # Amplitude of the far range's sea against the near range's (0.88: -1.1 dB in power; real IW swaths
    # darken by 5-8 dB, 0.5-0.4), falling linearly across the columns.
    far_range_gain: float = 0.88
    origin: tuple[float, float] = ORIGIN_LONLAT  # lon, lat of the top-left corner

    def transform(self) -> Affine:
        x, y = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(*self.origin)
        return Affine(PIXEL_M, 0.0, round(x), 0.0, -PIXEL_M, round(y))


def grd_slicks(height: int, width: int) -> list[Slick]:
    """A few slicks of 1-10 km for a full scene (placed at sea by the generator's land mask below)."""
    return [
        Slick(width * 0.30, height * 0.25, 400, 60, 20),
        Slick(width * 0.55, height * 0.15, 900, 120, -35),
        Slick(width * 0.70, height * 0.45, 250, 50, 70),
        Slick(width * 0.40, height * 0.60, 600, 90, 5),
    ]


def land_grid(spec: SceneSpec, transform: Affine) -> np.ndarray | None:
    """Bool (height / LAND_STEP, width / LAND_STEP) land at coarse grid points, from GSHHG."""
    if not spec.land:
        return None
    from ml.geo.landmask import on_land  # the ML package's land mask: the same truth as the service's

    rows = np.arange(0, spec.height, LAND_STEP) + LAND_STEP / 2
    cols = np.arange(0, spec.width, LAND_STEP) + LAND_STEP / 2
    cc, rr = np.meshgrid(cols, rows)
    xs, ys = transform @ (cc.ravel(), rr.ravel())
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(xs, ys)
    return on_land(np.asarray(lon), np.asarray(lat)).reshape(rr.shape)


def _strip(
    spec: SceneSpec, r0: int, r1: int, land: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    rows = np.arange(r0, r1, dtype=np.float32)[:, None]
    cols = np.arange(spec.width, dtype=np.float32)[None, :]
    sea_dn = 320.0 * (1.0 - (1.0 - spec.far_range_gain) * cols / spec.width)  # near to far range
    speckle = np.sqrt(rng.standard_gamma(4.0, size=(r1 - r0, spec.width), dtype=np.float32) / 4.0)
    dn = sea_dn * speckle
    if land is not None:
        on = land[(np.arange(r0, r1) // LAND_STEP)[:, None], (np.arange(spec.width) // LAND_STEP)[None, :]]
        dn = np.where(on, 1.15 * dn * (1.0 + 0.2 * np.sin(cols / 97.0) * np.cos(rows / 71.0)), dn)
    for slick in spec.slicks:
        if slick.row + slick.a < r0 or slick.row - slick.a > r1:
            continue
        dn = np.where(slick.inside(rows, cols), dn * 0.32, dn)  # -10 dB in power
    left = spec.nodata_share * spec.width * (0.55 + 0.45 * rows / spec.height)
    right = spec.width - spec.nodata_share * spec.width * (1.0 - 0.45 * rows / spec.height)
    border = (cols < left) | (cols >= right) | (rows < 0.01 * spec.height) | (rows >= 0.99 * spec.height)
    values: np.ndarray = np.clip(np.rint(dn), 1, 65535).astype(np.uint16)
    values[border] = 0
    return values


def write_scene_tif(spec: SceneSpec, path: Path) -> None:
    """The scene as a tiled, DEFLATE-compressed BigTIFF with nodata 0 and averaged overviews (2-16x)."""
    transform = spec.transform()
    land = land_grid(spec, transform)
    rng = np.random.default_rng(spec.seed)
    profile = {
        "driver": "GTiff",
        "width": spec.width,
        "height": spec.height,
        "count": 1,
        "dtype": "uint16",
        "crs": CRS,
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "DEFLATE",
        "zlevel": 1,
        "predictor": 2,
        "BIGTIFF": "YES",
    }
    with rasterio.Env(GDAL_NUM_THREADS="2"), rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, spec.height, STRIP_ROWS):
            r1 = min(spec.height, r0 + STRIP_ROWS)
            dst.write(_strip(spec, r0, r1, land, rng), 1, window=((r0, r1), (0, spec.width)))
        dst.update_tags(1, POLARISATION="VV")
        if spec.overviews:
            factors = [f for f in (2, 4, 8, 16) if min(spec.height, spec.width) // f >= 256]
            if factors:
                dst.build_overviews(factors, Resampling.average)


def write_scene_zip(spec: SceneSpec, zip_path: Path, name: str = "measurement/s1a-iw-grd-vv.tiff") -> Path:
    """The scene's TIFF stored (not deflated again: its tiles are compressed) in a zip, as analysts upload."""
    tif = zip_path.with_suffix(".tif")
    write_scene_tif(spec, tif)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.write(tif, name)
    tif.unlink()
    return zip_path
