"""Pixel-level facts about oil regions, found without a GDAL call where numpy is cheaper.

GDAL's sieve and rasterize cost ~25 ns a pixel (measured on 256x256 to 1024x1024 masks, 2 shared cores): on a
256x256 tile with one slick each costs about as much as polygonising it, which is most of vectorising's time
per image. Both are needed only sometimes:
- the sieve is a speed measure (the regions under the minimum are dropped by area anyway): it pays off when
  there are many specks, because building one small polygon costs ~20 µs. `worth_sieving` bounds the number
  of regions from above in numpy (~0.1 ms) and sieves only when that bound could cost more than the sieve;
- a region's member pixels are simply the oil pixels of its bounding box when no other region's box
  overlaps it (`isolated`), which is the common case; otherwise `member_pixels` finds them by point in
  polygon or rasterize, as before.
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import Polygon

SIEVE_S_PER_PIXEL = 25e-9  # GDAL's sieve on a bool box (measured, see the module's docstring)
POLYGON_S = 20e-6  # polygonising and building one speck that the sieve would have dropped
MAX_PAIRWISE = 64  # regions: above this, the overlap test's n² costs more than it saves
_SMALL_BOX = 4096  # pixels: below this, shapely's point-in-polygon beats rasterize's per-call cost

Box = tuple[int, int, int, int]  # rows r0..r1, cols c0..c1, end exclusive


def region_bound(oil: np.ndarray, band_pixels: int = 1 << 20) -> int:
    """An upper bound on the 4-connected regions of a bool array: the runs of a row with no oil above them.

    Every region has a topmost row, and each of its runs there has no oil pixel directly above. Counted in
    bands of rows, so that a scene's mask costs a megabyte of scratch, not two copies of itself.
    """
    height, width = oil.shape
    rows = max(1, band_pixels // max(1, width))
    count = 0
    for r0 in range(0, height, rows):
        band = oil[r0 : r0 + rows]
        over = oil[r0 - 1 : r0 - 1 + band.shape[0]] if r0 > 0 else None
        count += _top_runs(band, over)
    return count


def _top_runs(band: np.ndarray, over: np.ndarray | None) -> int:
    """Top runs of `band`, whose rows lie under those of `over` (None: nothing above the first row)."""
    flat = np.ascontiguousarray(band).ravel()
    first = flat.copy()  # the first pixel of every run (a row's first column starts one if oil)
    first[1:] &= ~flat[:-1]
    first[:: band.shape[1]] = flat[:: band.shape[1]]
    starts = np.flatnonzero(first)
    if starts.size == 0:
        return 0
    above = np.zeros_like(band)
    if over is not None:
        np.logical_and(band, over, out=above)
    else:
        above[1:] = band[1:] & band[:-1]
    # OR over [start, next start) is the OR over the run: between runs `above` is False.
    touched = np.logical_or.reduceat(above.ravel(), starts)
    return int(starts.size - np.count_nonzero(touched))


def worth_sieving(oil: np.ndarray, min_pixels: float) -> bool:
    """Whether GDAL's sieve would cost less than polygonising the specks it might remove."""
    if min_pixels < 2:
        return False
    return region_bound(oil) * POLYGON_S > oil.size * SIEVE_S_PER_PIXEL


def pixel_box(polygon: Polygon) -> Box:
    """(r0, r1, c0, c1) of a pixel-edge polygon (its bounds are whole pixels)."""
    minx, miny, maxx, maxy = (round(v) for v in polygon.bounds)
    return miny, maxy, minx, maxx


def isolated(boxes: list[Box]) -> np.ndarray:
    """Bool per box: no other box overlaps it (so its region's pixels are the oil pixels inside it).

    All False when there are too many boxes for the pairwise test to pay.
    """
    if len(boxes) > MAX_PAIRWISE:
        return np.zeros(len(boxes), dtype=bool)
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    r0, r1, c0, c1 = (b[:, k] for k in range(4))
    overlap = (
        (r0[:, None] < r1[None, :])
        & (r0[None, :] < r1[:, None])
        & (c0[:, None] < c1[None, :])
        & (c0[None, :] < c1[:, None])
    )
    return np.asarray(overlap.sum(axis=1) == 1)


def member_pixels(polygon: Polygon, box: Box) -> np.ndarray:
    """Bool (rows, cols) over `box` (r0, r1, c0, c1): pixels whose centre is inside the pixel-edge polygon.

    Point-in-polygon on pixel centres for small boxes (no per-call GDAL overhead), GDAL's rasterize for large.
    """
    r0, r1, c0, c1 = box
    if (r1 - r0) * (c1 - c0) <= _SMALL_BOX:
        cc, rr = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
        return np.asarray(shapely.contains_xy(polygon, cc, rr), dtype=bool)
    out = rasterize(
        [(polygon, 1)], out_shape=(r1 - r0, c1 - c0), transform=Affine.translation(c0, r0), dtype="uint8"
    )
    return np.asarray(out, dtype=bool)


def touches_nodata(member: np.ndarray, valid: np.ndarray | None, box: Box, shape_hw: tuple[int, ...]) -> bool:
    """True when an 8-neighbour of a member pixel is nodata or outside the image."""
    r0, r1, c0, c1 = box
    if r0 == 0 or c0 == 0 or r1 == shape_hw[0] or c1 == shape_hw[1]:
        return True
    if valid is None:
        return False
    grown = np.zeros((member.shape[0] + 2, member.shape[1] + 2), dtype=bool)
    for dr in range(3):
        for dc in range(3):
            grown[dr : dr + member.shape[0], dc : dc + member.shape[1]] |= member
    return bool((grown & ~valid[r0 - 1 : r1 + 1, c0 - 1 : c1 + 1]).any())
