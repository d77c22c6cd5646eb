"""Which tiles of a scene are all land: those never reach the model (issue 17, "work skipped").

A tile is land when every point of a `side` x `side` grid over it (its corners and edges included) is on
land by the GSHHG shoreline (ml.geo.landmask). A tile with any grid point at sea is run; a fjord narrower
than the grid's spacing (a tile's side / (side - 1): ~1.5 km at 40 m processing resolution) can be missed,
which the slick-level land rule would then have dropped anyway for most slicks there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ml.geo.georef import Georef
from ml.geo.landmask import LandMask, on_land
from ml.inference import tile_starts

GRID_SIDE = 8


def land_tiles(
    georef: Georef,
    ys: list[int],
    xs: list[int],
    tile: int,
    landmask: LandMask | None = None,
    side: int = GRID_SIDE,
) -> set[tuple[int, int]]:
    """The (y, x) tile corners whose grid points are all on land (one land-mask query for the scene)."""
    offsets = np.linspace(0, tile - 1, side)
    corner_y, corner_x = np.meshgrid(np.asarray(ys, float), np.asarray(xs, float), indexing="ij")
    rows = corner_y[..., None, None] + offsets[:, None]  # (Y, X, side, 1)
    cols = corner_x[..., None, None] + offsets[None, :]  # (Y, X, 1, side)
    rows, cols = np.broadcast_arrays(rows, cols)
    rows = np.minimum(rows, georef.height - 1) + 0.5  # pixel centres, inside the scene
    cols = np.minimum(cols, georef.width - 1) + 0.5
    lon, lat = georef.pixel_to_lonlat(cols.ravel(), rows.ravel())
    land = on_land(np.asarray(lon), np.asarray(lat), landmask).reshape(rows.shape).all(axis=(2, 3))
    return {(ys[i], xs[j]) for i, j in zip(*np.nonzero(land), strict=True)}


def land_skipper(
    georef: Georef | None, height: int, width: int, tile: int, overlap: int, landmask: LandMask | None = None
) -> Callable[[int, int], bool] | None:
    """`skip(y, x)` for ml.scene.strips, or None without a georeference (no telling where land is)."""
    if georef is None:
        return None
    ys = tile_starts(max(height, tile), tile, overlap)
    xs = tile_starts(max(width, tile), tile, overlap)
    land = land_tiles(georef, ys, xs, tile, landmask)
    return lambda y, x: (y, x) in land
