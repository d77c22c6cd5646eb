"""A slick's outline: the pixel staircase of GDAL's polygon as the straight edges it stands for.

Pure geometry (no raster, no georeference), so it stands alone; ml.geo.vectorise calls it once per slick.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from shapely.geometry import Polygon


def smooth_outline(polygon: Polygon, simplify_px: float = 0.5) -> Polygon:
    """The pixel staircase as straight edges: steps cut at their edges' midpoints, then Douglas-Peucker.

    A rasterised straight edge is a digital line: runs in its main direction, one-pixel steps in the other,
    and the midpoints of its runs and steps lie on the line itself. So each corner next to a one-pixel edge is
    replaced by the midpoints of its two edges, and simplifying at `simplify_px` then drops the collinear
    points. A corner between two longer edges is a true corner (a rectangle's) and is kept. Falls back to the
    simplified staircase in the rare case that cutting makes two rings cross (one-pixel walls).
    """
    # Tolerance 0 only drops collinear points, so plain Douglas-Peucker is safe there and cheaper.
    exact = polygon.simplify(0.0, preserve_topology=False)
    cut_polygon = Polygon(_cut_ring(exact.exterior.coords), [_cut_ring(h.coords) for h in exact.interiors])
    if not cut_polygon.is_valid:
        cut_polygon = exact
    if simplify_px <= 0:
        return cut_polygon
    # Plain Douglas-Peucker is a third of the topology-preserving simplifier's cost; the rare outline it
    # makes invalid (a ring crossing itself or a hole) is simplified again the careful way.
    simple = cut_polygon.simplify(simplify_px, preserve_topology=False)
    if isinstance(simple, Polygon) and not simple.is_empty and simple.is_valid:
        return simple
    return cut_polygon.simplify(simplify_px, preserve_topology=True)


def _cut_ring(coords: Any) -> np.ndarray:
    """A closed ring whose corners next to an edge of at most one pixel are cut at the edges' midpoints."""
    xy = np.asarray(coords)[:-1, :2]
    after = np.roll(xy, -1, axis=0)  # edge i runs from vertex i to vertex i + 1
    length = np.hypot(*(after - xy).T)
    kept = (length > 1.0 + 1e-9) & (np.roll(length, 1) > 1.0 + 1e-9)  # vertex i: edges i - 1 and i long
    mid = (xy + after) / 2.0
    start = np.where(kept[:, None], xy, mid)
    end = np.where(np.roll(kept, -1)[:, None], after, mid)
    points = np.stack([start, end], axis=1).reshape(-1, 2)
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(np.abs(np.diff(points, axis=0)) > 1e-9, axis=1)
    points = points[keep]
    if np.allclose(points[0], points[-1]):
        points = points[:-1]
    return np.vstack([points, points[:1]])
