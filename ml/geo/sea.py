"""Share of an area at sea by the GSHHG shoreline (ml.geo.landmask): which windows of an area job to read.

An area job's worker asks this (POST /land/sea-fraction) for every window, a scene's footprint within a
bbox, before it reads any pixel: a window with no sample point at sea is not read. The worker does not load
the land mask itself (~0.8 GB and seconds per process); the ML service already holds it.

The points: a square grid over the area's bounds (each part's, for a MultiPolygon), its edges included (a
bbox whose sea is a strip along its border still counts), kept where the area covers them, plus the
area's own vertices. A grid of 1024
points over a 50 km box (MAX_AREA_KM2 = 2500) is 1.6 km apart: sea narrower than that inside an otherwise
land window can be missed. GSHHG level 1 only: lakes and the Caspian Sea are land (their slicks would be
dropped anyway).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ml.geo.landmask import LandMask, on_land


def to_geometry(area: Mapping[str, Any]) -> BaseGeometry:
    """The GeoJSON polygon as a shapely geometry; ValueError saying what is wrong with it."""
    try:
        geometry = shape(area)
    except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.GEOSException) as exc:
        raise ValueError(f"not a GeoJSON polygon ({type(exc).__name__}: {exc})") from exc
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty:
        raise ValueError(f"an empty {geometry.geom_type}")
    west, south, east, north = geometry.bounds
    if not (-360 <= west <= east <= 360 and -90 <= south <= north <= 90):
        raise ValueError(f"bounds {geometry.bounds} are not WGS 84 longitudes and latitudes")
    return geometry


def sample_points(area: BaseGeometry, samples: int) -> np.ndarray:
    """About `samples` points (N x 2, lon/lat): the grid points the area covers, and its vertices; the
    parts of a MultiPolygon each sampled on their own, by their share of the area."""
    if area.geom_type == "MultiPolygon":
        parts = list(getattr(area, "geoms", []))
        total = sum(part.area for part in parts) or 1.0
        return np.concatenate([sample_points(p, max(4, round(samples * p.area / total))) for p in parts])
    west, south, east, north = area.bounds
    side = max(2, int(np.ceil(np.sqrt(samples))))
    xs, ys = (a.ravel() for a in np.meshgrid(np.linspace(west, east, side), np.linspace(south, north, side)))
    covered = shapely.intersects_xy(area, xs, ys)  # the boundary included
    vertices = shapely.get_coordinates(area)
    points = np.concatenate([np.column_stack([xs[covered], ys[covered]]), vertices])
    if len(points) == 0:  # cannot happen for a valid polygon, which has vertices; kept for safety
        point = area.representative_point()
        points = np.array([[point.x, point.y]])
    return points


def sea_fractions(
    areas: Sequence[BaseGeometry], samples: int, landmask: LandMask | None = None
) -> list[tuple[float, int]]:
    """(share of the points at sea, number of points) per area: one land-mask query for them all."""
    grids = [sample_points(area, samples) for area in areas]
    points = np.concatenate(grids)
    land = on_land(points[:, 0], points[:, 1], landmask)
    bounds = np.cumsum([0, *(len(g) for g in grids)])
    return [(float(1.0 - land[a:b].mean()), int(b - a)) for a, b in itertools.pairwise(bounds)]
