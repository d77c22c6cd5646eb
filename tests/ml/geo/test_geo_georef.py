"""ml.geo.georef: pixel -> lon/lat through an affine transform or GCPs, footprint, pixel size, JSON."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pyproj import Transformer
from rasterio.crs import CRS

from ml.geo.georef import Georef

UTM = CRS.from_epsg(32639).to_wkt()
LONLAT = CRS.from_epsg(4326).to_wkt()


def utm_georef() -> Georef:
    return Georef(1200, 1000, UTM, 32639, transform=(10.0, 0.0, 600_000.0, 0.0, -10.0, 2_990_000.0))


def warped_lonlat(cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A mildly quadratic pixel -> lon/lat mapping, like a GRD's slant geometry (rotated, stretched)."""
    lon = 51.0 + 1.1e-4 * cols + 2.0e-5 * rows + 1.0e-9 * cols * rows
    lat = 27.5 - 9.0e-5 * rows + 1.5e-5 * cols + 2.0e-10 * cols**2
    return lon, lat


def gcp_georef(width: int = 1000, height: int = 800) -> Georef:
    cols, rows = np.meshgrid(np.linspace(0, width, 11), np.linspace(0, height, 9))
    lon, lat = warped_lonlat(cols.ravel(), rows.ravel())
    gcps = tuple(zip(cols.ravel(), rows.ravel(), lon, lat, np.zeros(lon.size), strict=True))
    return Georef(width, height, LONLAT, 4326, gcps=gcps)


def test_affine_utm_maps_like_pyproj() -> None:
    georef = utm_georef()
    cols, rows = np.array([0.0, 600.0, 1200.0]), np.array([0.0, 500.5, 1000.0])
    lon, lat = georef.pixel_to_lonlat(cols, rows)
    to_lonlat = Transformer.from_crs(32639, 4326, always_xy=True)
    ex_lon, ex_lat = to_lonlat.transform(600_000.0 + 10 * cols, 2_990_000.0 - 10 * rows)
    np.testing.assert_allclose(lon, ex_lon, atol=1e-10)
    np.testing.assert_allclose(lat, ex_lat, atol=1e-10)


def test_gcp_transformer_follows_the_warp_between_gcps() -> None:
    georef = gcp_georef()
    assert not georef.is_affine
    rng = np.random.default_rng(1)
    cols, rows = rng.uniform(0, 1000, 200), rng.uniform(0, 800, 200)
    lon, lat = georef.pixel_to_lonlat(cols, rows)
    ex_lon, ex_lat = warped_lonlat(cols, rows)
    np.testing.assert_allclose(lon, ex_lon, atol=1e-8)  # ~1 mm: GDAL's 2nd-order fit is exact for a quadratic
    np.testing.assert_allclose(lat, ex_lat, atol=1e-8)


def test_pixel_to_lonlat_keeps_shapes() -> None:
    lon, lat = gcp_georef().pixel_to_lonlat(np.zeros((3, 4)), np.ones((3, 4)))
    assert lon.shape == lat.shape == (3, 4)


def test_footprint_and_bounds() -> None:
    georef = utm_georef()
    footprint = georef.footprint()
    assert footprint.is_valid and len(footprint.exterior.coords) == 4 * 16 + 1
    west, south, east, north = georef.bounds()
    assert west < east and south < north
    lon, lat = georef.pixel_to_lonlat(np.array([600.0]), np.array([500.0]))
    assert west < lon[0] < east and south < lat[0] < north
    assert west > 51.9 and east < 52.2 and south > 26.9 and north < 27.1


def test_pixel_size_in_metres() -> None:
    dx, dy = utm_georef().pixel_size_m()
    assert dx == pytest.approx(10.0 / 0.99972, rel=2e-4) and dy == pytest.approx(10.0 / 0.99972, rel=2e-4)
    lonlat = Georef(100, 100, LONLAT, 4326, transform=(1e-4, 0.0, 51.0, 0.0, -1e-4, 27.0))
    dx, dy = lonlat.pixel_size_m()
    # Textbook lengths of 1e-4 degree at 27 N, of a parallel (111,413 cos φ - 94 cos 3φ m) and a meridian.
    assert dx == pytest.approx(9.925, abs=0.002) and dy == pytest.approx(11.080, abs=0.002)


@pytest.mark.parametrize("make", [utm_georef, gcp_georef])
def test_json_round_trip(make: Callable[[], Georef]) -> None:
    georef = make()
    again = Georef.from_json(json.loads(json.dumps(georef.to_json())))
    assert again == georef
    np.testing.assert_array_equal(
        again.pixel_to_lonlat(np.array([3.0]), np.array([4.0]))[0],
        georef.pixel_to_lonlat(np.array([3.0]), np.array([4.0]))[0],
    )


def test_summary_for_reports() -> None:
    summary = utm_georef().summary()
    assert summary["georeferenced"] is True and summary["crs"] == "EPSG:32639"
    assert summary["georeferencing"] == "affine" and len(summary["bounds"]) == 4
    assert gcp_georef().summary()["georeferencing"] == "gcps"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {
            "transform": (1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
            "gcps": ((0, 0, 1, 1, 0), (1, 0, 2, 1, 0), (0, 1, 1, 2, 0)),
        },
        {"gcps": ((0, 0, 1, 1, 0), (1, 0, 2, 1, 0))},
    ],
)
def test_a_georef_has_exactly_one_kind(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Georef(10, 10, LONLAT, 4326, **kwargs)


@pytest.mark.parametrize("make", [utm_georef, gcp_georef])
def test_pickles_after_use(make: Callable[[], Georef]) -> None:
    """A Georef that has mapped points (and cached its transformers) still pickles, e.g. for Celery."""
    georef = make()
    before = georef.pixel_to_lonlat(np.array([10.0]), np.array([20.0]))
    again = pickle.loads(pickle.dumps(georef))
    assert again == georef
    np.testing.assert_allclose(again.pixel_to_lonlat(np.array([10.0]), np.array([20.0])), before)


def test_a_scene_that_bends_more_than_a_quadratic_gets_a_thin_plate_spline() -> None:
    def bent(cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 51.0 + 1e-4 * cols + 2e-3 * np.sin(cols / 300.0), 27.5 - 1e-4 * rows + 1e-3 * np.cos(
            rows / 200.0
        )

    cols, rows = np.meshgrid(np.linspace(0, 2000, 21), np.linspace(0, 1500, 16))
    lon, lat = bent(cols.ravel(), rows.ravel())
    gcps = tuple(zip(cols.ravel(), rows.ravel(), lon, lat, np.zeros(lon.size), strict=True))
    georef = Georef(2000, 1500, LONLAT, 4326, gcps=gcps)
    assert (
        georef.gcp_method == "tps"
        and gcp_georef().gcp_method == "polynomial"
        and utm_georef().gcp_method is None
    )
    test_c, test_r = np.array([150.0, 1234.5, 1999.0]), np.array([75.0, 777.7, 1400.0])
    got_lon, got_lat = georef.pixel_to_lonlat(test_c, test_r)
    ex_lon, ex_lat = bent(test_c, test_r)
    np.testing.assert_allclose(got_lon, ex_lon, atol=1e-5)  # ~1 m, a tenth of a pixel
    np.testing.assert_allclose(got_lat, ex_lat, atol=1e-5)
