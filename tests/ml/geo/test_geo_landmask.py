"""ml.geo.landmask: slicks on land dropped with roaring-landmask's GSHHG mask; the rule on fake masks."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import rasterio
from geo_samples import Ellipse, geotiff_bytes
from shapely import contains_xy
from shapely.geometry import Polygon

from ml.geo.georef import Georef
from ml.geo.landmask import (
    default_landmask,
    drop_land,
    is_on_land,
    land_share,
    on_land,
    release_default_landmask,
    sample_points,
)
from ml.geo.raster import read_geotiff
from ml.geo.vectorise import Slick, vectorise

H, W = 400, 500
RIYADH = (46.7, 24.5)  # inland Saudi Arabia
GULF = (51.5, 27.0)  # the Persian Gulf, between Qatar and Iran


@pytest.fixture(scope="module", autouse=True)
def _release_landmask() -> Iterator[None]:
    """The rest of the test session should not carry the land mask's ~0.8 GB."""
    yield
    release_default_landmask()


def slicks_at(lon: float, lat: float, via_geotiff: bool = False) -> list[Slick]:
    """One elliptic slick centred near (lon, lat) on a 1e-4 degree EPSG:4326 grid."""
    oil = Ellipse(cx=250, cy=200, a=150, b=40, angle=15).mask(H, W)
    transform = rasterio.Affine(1e-4, 0.0, lon - 0.025, 0.0, -1e-4, lat + 0.02)
    if via_geotiff:
        georef = read_geotiff(
            geotiff_bytes(oil.astype(np.uint8), crs="EPSG:4326", transform=transform)
        ).georef
    else:
        georef = Georef(W, H, rasterio.crs.CRS.from_epsg(4326).to_wkt(), 4326, transform=tuple(transform)[:6])
    return vectorise(np.where(oil, 255, 0).astype(np.uint8), np.full((H, W), 0.8, np.float32), None, georef)


class DiscLand:
    """A fake land mask: land within `radius` degrees of `centre`, or outside it with `inverted`."""

    def __init__(self, centre: tuple[float, float], radius: float, inverted: bool = False) -> None:
        self.centre, self.radius, self.inverted = centre, radius, inverted

    def contains_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        inside = np.hypot(lon - self.centre[0], lat - self.centre[1]) <= self.radius
        return ~inside if self.inverted else inside


class NoLandMask:
    def contains_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        raise AssertionError("the land mask must not be consulted")


def test_gshhg_mask_ships_in_the_wheel_and_knows_land_from_sea() -> None:
    mask = default_landmask()
    assert default_landmask() is mask  # loaded once
    got = on_land(
        np.array([RIYADH[0], GULF[0], 360.0 + RIYADH[0]]), np.array([RIYADH[1], GULF[1], RIYADH[1]])
    )
    assert got.tolist() == [True, False, True]


def test_slick_on_land_is_dropped_and_slick_at_sea_kept() -> None:
    land = slicks_at(*RIYADH, via_geotiff=True)
    sea = slicks_at(*GULF, via_geotiff=True)
    assert len(land) == len(sea) == 1
    kept, dropped = drop_land([*sea, *land])
    assert kept == [sea[0]] and dropped == [land[0]]
    kept, dropped = drop_land([*land, *sea])
    assert [s.id for s in kept] == [1] and kept[0].centroid_lonlat == sea[0].centroid_lonlat


def test_rule_needs_centroid_and_most_samples_on_land() -> None:
    (slick,) = slicks_at(*GULF)
    assert slick.centroid_lonlat is not None
    everything = DiscLand(slick.centroid_lonlat, 10.0)
    assert is_on_land(slick, everything) and land_share(slick, everything) == 1.0
    headland = DiscLand(slick.centroid_lonlat, 0.002)  # centroid on a small headland, the slick mostly at sea
    assert 0.0 < land_share(slick, headland) < 0.5 and not is_on_land(slick, headland)
    bay = DiscLand(slick.centroid_lonlat, 0.002, inverted=True)  # centroid at sea in a small bay
    assert land_share(slick, bay) > 0.5 and not is_on_land(slick, bay)


def test_not_georeferenced_slicks_are_kept_without_a_land_mask() -> None:
    oil = Ellipse(cx=50, cy=40, a=30, b=10).mask(80, 100)
    slicks = vectorise(np.where(oil, 255, 0).astype(np.uint8), np.ones((80, 100), np.float32))
    assert drop_land(slicks, NoLandMask()) == (slicks, [])
    assert not is_on_land(slicks[0], NoLandMask())


def test_sample_points_lie_inside() -> None:
    (slick,) = slicks_at(*GULF)
    assert slick.polygon_lonlat is not None
    points = sample_points(slick.polygon_lonlat, samples=64)
    assert 16 <= len(points) <= 64
    assert contains_xy(slick.polygon_lonlat, points[:, 0], points[:, 1]).all()


@pytest.mark.parametrize("samples", [1, 5])
def test_tiny_polygons_still_get_a_sample(samples: int) -> None:
    sliver = Polygon([(0, 0), (1e-6, 0), (1e-6, 1e-6)])
    assert 1 <= len(sample_points(sliver, samples)) <= samples
