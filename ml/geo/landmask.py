"""Drop slicks on land: the GSHHG shoreline as packaged by `roaring-landmask` (used by the OpenDrift model).

The data ships inside the wheel (a ~100 MB compiled extension: a roaring-bitmap raster of 1/240 degree cells,
about 460 m, whose land cells are checked against the full-resolution GSHHG polygons), so nothing is
downloaded at run time (checked: it loads in a network namespace without network, `unshare -n`). GSHHG's full
resolution follows the coast to within ~100 m.
Its land is GSHHG level 1 only: lakes and the Caspian Sea count as land, so slicks there are dropped.

Cost: only the GSHHG polygons are loaded (`roaring_landmask.Shapes`), not `RoaringLandmask`, whose roaring
bitmap of 1/240-degree cells is a prefilter in front of the same polygons: the answers are identical (checked
on 200,000 points over Europe's coasts, 59 % on land: no difference), the bitmap only makes a query faster
(4 against 6.4 microseconds a point), and queries here are a few thousand per image. Measured (resident set
size of a fresh process): RoaringLandmask 1,181 MB after loading (1,344 MB at peak, 5.3 s); Shapes 778 MB
(951 MB at peak, 3.4 s); the bitmap alone 417 MB. So `default_landmask()` loads the shapes once, lazily, on
first use, and keeps them for the process (thread-safe). Load them in one long-lived process (the ML
service), or before a prefork pool forks: each process that loads them pays the ~0.8 GB.

The rule (`is_on_land`): a slick is on land when its centroid is on land **and** at least `share` (default
half) of up to `samples` points inside its polygon are. Both, so a slick along the coast whose centroid falls
on a headland, or a long thin slick curving into a bay, stays; SAR "slicks" on land (dark tarmac, sand,
shadows) are whole-polygon-inland and go.
Slicks of images without georeferencing are kept: there is no telling.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import shapely
from shapely.geometry import Polygon

from ml.geo.vectorise import Slick, renumber

DEFAULT_SAMPLES = 64
DEFAULT_LAND_SHARE = 0.5


class LandMask(Protocol):
    """Says per point whether it is on land: roaring_landmask.Shapes (or RoaringLandmask), or a test fake."""

    def contains_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray: ...


_lock = threading.Lock()
_landmask: LandMask | None = None


def default_landmask() -> LandMask:
    """The GSHHG land mask, loaded on first call (seconds) and cached for the process."""
    global _landmask
    with _lock:
        if _landmask is None:
            from roaring_landmask import LandmaskProvider, Shapes

            _landmask = Shapes.new(LandmaskProvider.Gshhg)
        return _landmask


def release_default_landmask() -> None:
    """Forget the cached land mask (its ~0.8 GB goes when nothing else holds it); the next use reloads it."""
    global _landmask
    with _lock:
        _landmask = None


def on_land(lon: np.ndarray, lat: np.ndarray, landmask: LandMask | None = None) -> np.ndarray:
    """Boolean array: which (lon, lat) points are on land. Longitudes are wrapped to [-180, 180)."""
    mask = landmask if landmask is not None else default_landmask()
    lon = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
    lat = np.clip(np.asarray(lat, dtype=np.float64), -90.0, 90.0)
    return np.asarray(mask.contains_many(lon, lat), dtype=bool)


def sample_points(polygon: Polygon, samples: int = DEFAULT_SAMPLES) -> np.ndarray:
    """Up to `samples` points (N x 2) inside the polygon: a regular grid over its bounds, kept inside."""
    minx, miny, maxx, maxy = polygon.bounds
    side = max(2, int(np.ceil(np.sqrt(samples * 2))))  # a slick fills about half its box or less
    grid_x, grid_y = np.meshgrid(
        np.linspace(minx, maxx, side + 2)[1:-1], np.linspace(miny, maxy, side + 2)[1:-1]
    )
    xs, ys = grid_x.ravel(), grid_y.ravel()
    inside = shapely.contains_xy(polygon, xs, ys)
    points = np.column_stack([xs[inside], ys[inside]])
    if len(points) > samples:
        points = points[np.linspace(0, len(points) - 1, samples).round().astype(int)]
    if len(points) == 0:  # a sliver between grid lines
        point = polygon.representative_point()
        points = np.array([[point.x, point.y]])
    return points


def land_share(slick: Slick, landmask: LandMask | None = None, samples: int = DEFAULT_SAMPLES) -> float:
    """Share of the sample points inside the slick that are on land (0.0 for a non-georeferenced slick)."""
    if slick.polygon_lonlat is None:
        return 0.0
    points = sample_points(slick.polygon_lonlat, samples)
    return float(on_land(points[:, 0], points[:, 1], landmask).mean())


def is_on_land(
    slick: Slick,
    landmask: LandMask | None = None,
    *,
    samples: int = DEFAULT_SAMPLES,
    share: float = DEFAULT_LAND_SHARE,
) -> bool:
    """The module's rule: centroid on land and at least `share` of the sample points on land."""
    if slick.polygon_lonlat is None or slick.centroid_lonlat is None:
        return False
    lon, lat = slick.centroid_lonlat
    if not bool(on_land(np.array([lon]), np.array([lat]), landmask)[0]):
        return False
    return land_share(slick, landmask, samples) >= share


def drop_land(
    slicks: Sequence[Slick],
    landmask: LandMask | None = None,
    *,
    samples: int = DEFAULT_SAMPLES,
    share: float = DEFAULT_LAND_SHARE,
) -> tuple[list[Slick], list[Slick]]:
    """(kept at sea, renumbered 1..n; dropped on land, ids unchanged). No land mask is loaded for no slick."""
    if not any(s.georeferenced for s in slicks):
        return list(slicks), []
    kept: list[Slick] = []
    dropped: list[Slick] = []
    for slick in slicks:
        (dropped if is_on_land(slick, landmask, samples=samples, share=share) else kept).append(slick)
    return renumber(kept), dropped
