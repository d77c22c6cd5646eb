"""Where a scene's land is, cell by cell: tiles all on land are not run, and land never reaches the model.

Skipping tiles all on land is issue 17's "work skipped". Hiding land in the tiles along a coast is issue 15's:
the model was trained with land as nodata (the CSIRO chips' land is masked) and the SOS tiles are sea, so
bright coastal land beside the sea is outside everything it has seen, and a network with a pretrained encoder
marks the sea along the coast as oil (ml/models/MODEL_CARD.md, round 5: 5 % of bench.far_range's sea, all
of it a band along the shore). So the model gets land at the level of the sea beside it, as a training
tile's nodata gets its tile's median.

The sea within `margin` cells of that land is hidden with it (`margin_cells`, the service's LAND_MARGIN_M):
GSHHG and a scene's own coast disagree by a cell or two, and a sliver of bright land left beside the sea
makes the sea next to it read as a dark slick (bench.scene: a 3.6 km² false slick against such a sliver,
none with one cell hidden; ml/models/MODEL_CARD.md, round 10). Tiles are still skipped on land alone.

The cells: one land-mask query (GSHHG, ml.geo.landmask) at the centre of every `COARSE` x `COARSE` block of
`LAND_CELL`-pixel cells, then every cell of the blocks with land and sea among their neighbours (the
coasts). An island smaller than a block and more than a block from any other land can be missed; the
slick-level land rule still applies to it. GSHHG follows the coast to ~100 m, about a cell at 20 m.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml.geo.georef import Georef
from ml.geo.landmask import LandMask, on_land

LAND_CELL = 8  # processing pixels a side: 160 m at the service's 20 m
COARSE = 4  # cells a side of a block of the first pass


@dataclass(frozen=True)
class LandCells:
    """Land (True) per `cell` x `cell` pixels of a scene's processing grid, at each cell's centre."""

    cells: np.ndarray  # bool (ceil(height / cell), ceil(width / cell))
    cell: int

    def pixels(self, row0: int, row1: int, width: int) -> np.ndarray:
        """Bool land per pixel of rows [row0, row1), `width` columns."""
        return self.at_rows(np.arange(row0, row1), width)

    def at_rows(self, rows: np.ndarray, width: int) -> np.ndarray:
        """Bool land per pixel of the given processing rows (a scene's sample), `width` columns."""
        cell_rows = np.minimum(rows // self.cell, self.cells.shape[0] - 1)
        cols = np.minimum(np.arange(width) // self.cell, self.cells.shape[1] - 1)
        land: np.ndarray = self.cells[cell_rows[:, None], cols[None, :]]
        return land

    def grown(self, by: int) -> LandCells:
        """These cells with every cell within `by` cells (a square) of land counted as land too."""
        if by <= 0 or not self.cells.any():
            return self
        return LandCells(np.logical_or.reduce(_neighbourhood(self.cells, by)), self.cell)

    def all_land(self, y: int, x: int, tile: int) -> bool:
        """Whether every cell a tile at (y, x) touches is land (tiles may reach past the scene's edge)."""
        c = self.cell
        block = self.cells[y // c : -(-(y + tile) // c), x // c : -(-(x + tile) // c)]
        return bool(block.size) and bool(block.all())


def land_cells(
    georef: Georef,
    height: int,
    width: int,
    landmask: LandMask | None = None,
    cell: int = LAND_CELL,
    coarse: int = COARSE,
) -> LandCells:
    """The scene's land cells: a coarse pass, then the coasts cell by cell (module docstring)."""
    rows, cols = -(-height // cell), -(-width // cell)
    brows, bcols = -(-rows // coarse), -(-cols // coarse)
    centre = np.minimum(np.arange(brows) * coarse + coarse // 2, rows - 1)
    middle = np.minimum(np.arange(bcols) * coarse + coarse // 2, cols - 1)
    blocks = _query(georef, height, width, cell, centre[:, None], middle[None, :], landmask)
    cells = np.repeat(np.repeat(blocks, coarse, axis=0), coarse, axis=1)[:rows, :cols]
    views = _neighbourhood(blocks, 1)
    coast = np.logical_or.reduce(views) & ~np.logical_and.reduce(views)
    if coast.any():
        in_coast = np.repeat(np.repeat(coast, coarse, axis=0), coarse, axis=1)[:rows, :cols]
        r, c = np.nonzero(in_coast)
        cells[r, c] = _query(georef, height, width, cell, r, c, landmask)
    return LandCells(cells, cell)


def _neighbourhood(cells: np.ndarray, by: int) -> list[np.ndarray]:
    """`cells` shifted by every offset up to `by` either way, edges repeated (a border is no coast)."""
    height, width = cells.shape
    padded = np.pad(cells, by, mode="edge")
    span = range(2 * by + 1)
    return [padded[dy : dy + height, dx : dx + width] for dy in span for dx in span]


def margin_cells(georef: Georef, margin_m: float, cell: int = LAND_CELL) -> int:
    """How many cells of coastal sea `margin_m` metres hide, at the image's pixel size (0: none)."""
    if margin_m <= 0:
        return 0
    return round(margin_m / (cell * max(georef.pixel_size_m())))


def _query(
    georef: Georef,
    height: int,
    width: int,
    cell: int,
    rows: np.ndarray,
    cols: np.ndarray,
    landmask: LandMask | None,
) -> np.ndarray:
    """Land at the centres of cells (rows, cols) (broadcast together), clipped inside the scene."""
    rows, cols = np.broadcast_arrays(rows, cols)
    y = np.minimum(rows * cell + cell / 2, height - 0.5)
    x = np.minimum(cols * cell + cell / 2, width - 0.5)
    lon, lat = georef.pixel_to_lonlat(x.ravel(), y.ravel())
    return on_land(np.asarray(lon), np.asarray(lat), landmask).reshape(rows.shape)


def land_skipper(land: LandCells, tile: int) -> Callable[[int, int], bool]:
    """`skip(y, x)` for ml.scene.strips: the tile at (y, x) is all land."""
    return lambda y, x: land.all_land(y, x, tile)


def land_hider(
    land: LandCells, fill: int, block: int = 256, margin: int = 0
) -> Callable[[int, np.ndarray], np.ndarray]:
    """`hide(row0, gray)` for ml.scene.strips: the rows' grey levels with land, and the sea within `margin`
    cells of it, at the level of the sea beside it (the median of the other pixels of each `block`-column
    block; `fill` where there is none).

    The training fills nodata with its tile's median; a scene's one fill level would stand out beside a
    far range a few dB darker than the scene's median, and the sea next to it would look like a slick.
    """
    land = land.grown(margin)

    def hide(row0: int, gray: np.ndarray) -> np.ndarray:
        on_land = land.pixels(row0, row0 + gray.shape[0], gray.shape[1])
        if not on_land.any():
            return gray
        out = gray.copy()
        for c0 in range(0, gray.shape[1], block):
            here = on_land[:, c0 : c0 + block]
            if not here.any():
                continue
            sea = gray[:, c0 : c0 + block][~here]
            level = np.median(sea[:: max(1, sea.size // 4096)]) if sea.size >= 64 else fill
            out[:, c0 : c0 + block][here] = np.uint8(level)
        return out

    return hide


def land_hidden(
    gray: np.ndarray,
    georef: Georef,
    block: int,
    landmask: LandMask | None = None,
    land: LandCells | None = None,
    margin_m: float = 0.0,
) -> np.ndarray:
    """A whole georeferenced image's grey levels as the model should see them: `land_hider` over row bands
    of `block` (the batch path's images, which are not read in strips). An image with no sea is left as it
    is: there is no sea to mislead, and the slick-level land rule (ml.geo.landmask) answers for it.
    `land`: its cells when already found (for its range trend), else found here; `margin_m`: the coastal
    sea hidden with the land (`margin_cells`)."""
    if land is None:
        land = land_cells(georef, gray.shape[0], gray.shape[1], landmask)
    if not land.cells.any() or land.cells.all():
        return gray
    margin = margin_cells(georef, margin_m, land.cell)
    hide = land_hider(land, int(np.median(gray[::8, ::8])), block, margin)
    return np.concatenate([hide(r, gray[r : r + block]) for r in range(0, gray.shape[0], block)])
