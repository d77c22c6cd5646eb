"""A scene's land cells: found with few land-mask queries, the same as querying every cell; tiles all on land
skipped; land shown to the model at the sea's level while the bands keep the grey levels as read; the same
for a whole georeferenced image of a batch."""

from __future__ import annotations

import numpy as np
import rasterio

from ml.geo.georef import Georef
from ml.scene.land import (
    LAND_CELL,
    LandCells,
    land_cells,
    land_hidden,
    land_hider,
    land_skipper,
    margin_cells,
)
from ml.scene.strips import strip_probabilities

UTM = rasterio.Affine(10.0, 0.0, 549_600.0, 0.0, -10.0, 2_986_540.0)  # ~27.0 N 51.5 E, at sea
GEOREF = Georef(1000, 600, rasterio.crs.CRS.from_epsg(32639).to_wkt(), 32639, transform=tuple(UTM)[:6])
ISLAND = GEOREF.pixel_to_lonlat(np.array([200.5]), np.array([300.5]))
COAST_LON = float(GEOREF.pixel_to_lonlat(np.array([700.5]), np.array([300.5]))[0][0])


class CoastAndIsland:
    """A fake land mask: land east of column ~700 and a round island ~1 km across; counts the points asked."""

    def __init__(self) -> None:
        self.asked = 0

    def contains_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        self.asked += np.size(lon)
        lon, lat = np.asarray(lon), np.asarray(lat)
        island = (lon - ISLAND[0][0]) ** 2 + (lat - ISLAND[1][0]) ** 2 < 0.005**2
        return (lon > COAST_LON) | island


def every_cell(height: int, width: int, mask: CoastAndIsland) -> np.ndarray:
    rows, cols = -(-height // LAND_CELL), -(-width // LAND_CELL)
    y, x = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    y = np.minimum(y * LAND_CELL + LAND_CELL / 2, height - 0.5)
    x = np.minimum(x * LAND_CELL + LAND_CELL / 2, width - 0.5)
    lon, lat = GEOREF.pixel_to_lonlat(x.ravel(), y.ravel())
    return mask.contains_many(np.asarray(lon), np.asarray(lat)).reshape(rows, cols)


def test_land_cells_are_every_cells_answer_with_fewer_queries() -> None:
    mask = CoastAndIsland()
    land = land_cells(GEOREF, 600, 1000, mask)
    asked, truth = mask.asked, every_cell(600, 1000, mask)
    assert truth.any() and not truth.all() and truth[300 // LAND_CELL, 200 // LAND_CELL]  # coast and island
    assert land.cells.shape == truth.shape and np.array_equal(land.cells, truth)
    assert asked < truth.size / 2
    pixels = land.pixels(290, 310, 1000)
    assert pixels.shape == (20, 1000) and pixels[:, 200].all() and not pixels[:, 100].any()


def test_tiles_all_on_land_are_skipped_and_no_other() -> None:
    land = land_cells(GEOREF, 600, 1000, CoastAndIsland())
    skip = land_skipper(land, 256)
    coast = int(max(np.argmax(row[40:]) + 40 for row in land.cells))  # east of it, all land (~700 / 8)
    assert coast > 0 and land.cells[:, coast:].all()
    assert skip(0, (coast + 1) * LAND_CELL) and skip(344, 1000 - 256)
    assert not skip(0, 0) and not skip(0, coast * LAND_CELL - 8)  # a tile with sea in it is run
    assert not skip(172, 80)  # the island's tile: sea around it


def test_the_model_sees_land_at_the_seas_level_and_the_bands_keep_it() -> None:
    land = land_cells(GEOREF, 600, 1000, CoastAndIsland())
    gray = np.random.default_rng(0).integers(150, 256, (600, 1000), dtype=np.uint8)  # median ~202
    hide = land_hider(land, 77, block=256)
    assert hide(0, gray[:8, :8]) is gray[:8, :8] or np.array_equal(hide(0, gray[:8, :8]), gray[:8, :8])
    on_land = land.pixels(0, 600, 1000)
    hidden = hide(0, gray)
    assert np.array_equal(hidden[~on_land], gray[~on_land])
    mixed = on_land[:, :768]  # the island (block 0) and the coast (block 2): land beside sea
    assert mixed.any() and (np.abs(hidden[:, :768][mixed].astype(int) - 202) <= 6).all()
    assert on_land[:, 768:].all() and (hidden[:, 768:] == 77).all()  # block 3, all land: the fill

    def predict(batch: np.ndarray) -> np.ndarray:
        return batch  # "probabilities" that are what the model was shown, blended back into place

    def read(r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        return gray[r0:r1], np.ones((r1 - r0, 1000), bool)

    bands = list(strip_probabilities(read, 600, 1000, predict, hide=hide))
    assert np.array_equal(np.concatenate([band.gray for band in bands]), gray)  # the overlay's grey levels
    shown = np.rint(np.concatenate([band.prob for band in bands]) * 255)
    assert np.array_equal(shown[~on_land], gray[~on_land])
    assert shown[on_land].max() <= 208  # never the land's own grey levels (150-255)


class OpenSea:
    def contains_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        return np.zeros(np.shape(lon), bool)


class Inland:
    def contains_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        return np.ones(np.shape(lon), bool)


def test_a_georeferenced_images_land_is_hidden_as_a_scenes() -> None:
    gray = np.random.default_rng(1).integers(150, 256, (600, 1000), dtype=np.uint8)  # median ~202
    hidden = land_hidden(gray, GEOREF, 256, CoastAndIsland())
    on_land = land_cells(GEOREF, 600, 1000, CoastAndIsland()).pixels(0, 600, 1000)
    assert hidden.shape == gray.shape and on_land.any()
    assert np.array_equal(hidden[~on_land], gray[~on_land])
    assert hidden[on_land].max() <= 208 and gray[on_land].max() == 255
    assert land_hidden(gray, GEOREF, 256, OpenSea()) is gray  # nothing to hide: the image as it is
    assert land_hidden(gray, GEOREF, 256, Inland()) is gray  # no sea: left to the slick-level land rule


def test_land_grown_by_a_margin_reaches_exactly_that_many_cells() -> None:
    cells = np.zeros((9, 9), bool)
    cells[4, 4] = True
    land = LandCells(cells, LAND_CELL)
    assert land.grown(0) is land
    grown = land.grown(2).cells
    assert grown[2:7, 2:7].all() and grown.sum() == 25  # a 5x5 square: two cells every way, no further
    assert LandCells(np.zeros((3, 3), bool), LAND_CELL).grown(1).cells.sum() == 0  # open sea stays sea
    assert not cells[3, 4]  # the original is left as it was


def test_margin_cells_follow_the_pixel_size() -> None:
    at_20m = Georef(
        500, 300, GEOREF.crs_wkt, 32639, transform=(20.0, 0.0, 549_600.0, 0.0, -20.0, 2_986_540.0)
    )
    assert margin_cells(GEOREF, 150.0) == 2  # 10 m pixels: 80 m cells
    assert margin_cells(at_20m, 150.0) == 1  # 20 m pixels, the scene path's: 160 m cells
    assert margin_cells(GEOREF, 0.0) == 0 and margin_cells(at_20m, 40.0) == 0


def test_the_sea_beside_land_is_hidden_with_a_margin_and_no_further() -> None:
    gray = np.random.default_rng(2).integers(150, 256, (600, 1000), dtype=np.uint8)
    mask = CoastAndIsland()
    on_land = land_cells(GEOREF, 600, 1000, mask).pixels(0, 600, 1000)
    near = land_cells(GEOREF, 600, 1000, mask).grown(2).pixels(0, 600, 1000)
    hidden = land_hidden(gray, GEOREF, 256, mask, margin_m=150.0)  # 2 cells of 80 m
    beside = near & ~on_land
    assert beside[:, 600:700].any() and not beside[:, :100].any()  # a band west of the coast, not far off
    assert hidden[beside].max() <= 208 and gray[beside].max() == 255  # the margin's sea hidden as land is
    assert np.array_equal(hidden[~near], gray[~near])  # the sea farther off untouched
    assert np.array_equal(land_hidden(gray, GEOREF, 256, mask, margin_m=0.0)[beside], gray[beside])
