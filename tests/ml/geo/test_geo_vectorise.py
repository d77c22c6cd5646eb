"""ml.geo.vectorise on synthetic GeoTIFFs with slicks of known shape: areas, vertices, lengths, flags."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import rasterio
from geo_samples import UTM_TRANSFORM, Ellipse, geotiff_bytes
from pyproj import Transformer
from rasterio.control import GroundControlPoint
from shapely.geometry import LinearRing, Point, Polygon

from ml.geo.georef import GEOD, Georef
from ml.geo.outline import smooth_outline
from ml.geo.raster import GeoRaster, read_geotiff
from ml.geo.vectorise import Slick, vectorise

H, W = 700, 900
SLICK = Ellipse(cx=430.0, cy=360.0, a=260.0, b=70.0, angle=28.0)
Mapping = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
_UTM_TO_LONLAT = Transformer.from_crs(32639, 4326, always_xy=True)


def utm_truth(cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = UTM_TRANSFORM @ (cols, rows)
    lon, lat = _UTM_TO_LONLAT.transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def lonlat_truth(cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return 51.2 + 1e-4 * cols, 27.3 - 1e-4 * rows


def grd_truth(cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotated, stretched, slightly quadratic: how a GRD's GCP grid bends (GDAL fits 2nd order exactly)."""
    lon = 51.0 + 1.1e-4 * cols + 2.0e-5 * rows + 1.0e-9 * cols * rows
    lat = 27.5 - 9.0e-5 * rows + 1.5e-5 * cols + 2.0e-10 * cols**2
    return lon, lat


@dataclass(frozen=True)
class Scene:
    raster: GeoRaster
    oil: np.ndarray  # the true slick's pixels
    truth: Mapping


def utm_uint8_scene() -> Scene:
    oil = SLICK.mask(H, W)
    band = np.where(oil, 30, 120).astype(np.uint8)
    data = geotiff_bytes(band, crs="EPSG:32639", transform=UTM_TRANSFORM, descriptions=["VV"])
    return Scene(read_geotiff(data), oil, utm_truth)


def lonlat_float_scene() -> Scene:
    oil = SLICK.mask(H, W)
    band = np.where(oil, 0.004, 0.05).astype(np.float32)
    transform = rasterio.Affine(1e-4, 0.0, 51.2, 0.0, -1e-4, 27.3)
    return Scene(read_geotiff(geotiff_bytes(band, crs="EPSG:4326", transform=transform)), oil, lonlat_truth)


def grd_gcp_scene() -> Scene:
    oil = SLICK.mask(H, W)
    band = np.where(oil, 90, 400).astype(np.uint16)
    band[:, :40] = 0  # GRD's nodata border
    band[-25:, :] = 0
    cols, rows = np.meshgrid(np.linspace(0, W, 21), np.linspace(0, H, 10))
    lon, lat = grd_truth(cols.ravel(), rows.ravel())
    gcps = [
        GroundControlPoint(row=r, col=c, x=x, y=y, z=0.0)
        for c, r, x, y in zip(cols.ravel(), rows.ravel(), lon, lat, strict=True)
    ]
    return Scene(read_geotiff(geotiff_bytes(band, gcps=gcps, nodata=0)), oil, grd_truth)


def db_nodata_scene() -> Scene:
    oil = SLICK.mask(H, W)
    band = np.where(oil, -28.0, -19.0).astype(np.float32)
    band[:30, :] = np.nan
    band[:, -50:] = -9999.0
    data = geotiff_bytes(band, crs="EPSG:32639", transform=UTM_TRANSFORM, nodata=-9999.0)
    return Scene(read_geotiff(data), oil, utm_truth)


SCENES = {"utm-uint8": utm_uint8_scene, "4326-float": lonlat_float_scene, "grd-gcps": grd_gcp_scene}
SCENES["db-nodata"] = db_nodata_scene


def probability(oil: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(oil, rng.uniform(0.55, 0.95, oil.shape), rng.uniform(0.0, 0.3, oil.shape)).astype(
        np.float32
    )


def local_metres(lon: np.ndarray, lat: np.ndarray, lon0: float, lat0: float) -> np.ndarray:
    k = math.pi / 180 * 6_371_008.8
    return np.column_stack([(lon - lon0) * k * math.cos(math.radians(lat0)), (lat - lat0) * k])


@pytest.fixture(scope="module", params=sorted(SCENES))
def scene(request: pytest.FixtureRequest) -> Scene:
    return SCENES[request.param]()


@pytest.fixture(scope="module")
def slick(scene: Scene) -> Slick:
    mask = np.where(scene.oil, 255, 0).astype(np.uint8)
    slicks = vectorise(mask, probability(scene.oil), scene.raster.valid, scene.raster.georef, min_pixels=10)
    assert len(slicks) == 1
    return slicks[0]


def test_scene_is_georeferenced_as_written(scene: Scene) -> None:
    georef = scene.raster.georef
    assert georef is not None
    cols, rows = np.array([0.0, 450.0, 900.0]), np.array([0.0, 350.0, 700.0])
    lon, lat = georef.pixel_to_lonlat(cols, rows)
    ex_lon, ex_lat = scene.truth(cols, rows)
    np.testing.assert_allclose(lon, ex_lon, atol=1e-7)
    np.testing.assert_allclose(lat, ex_lat, atol=1e-7)


def test_area_within_2_percent_of_the_true_ellipse(scene: Scene, slick: Slick) -> None:
    lon, lat = scene.truth(*SLICK.outline().T)
    true_area_m2, true_perimeter_m = GEOD.polygon_area_perimeter(lon, lat)
    assert slick.area_km2 is not None and slick.perimeter_km is not None
    assert slick.area_km2 == pytest.approx(abs(true_area_m2) / 1e6, rel=0.02)
    assert slick.perimeter_km == pytest.approx(true_perimeter_m / 1e3, rel=0.02)
    assert slick.pixels == int(scene.oil.sum())


def test_vertices_within_a_pixel_of_the_true_outline(scene: Scene, slick: Slick) -> None:
    truth_px = LinearRing(SLICK.outline())
    px = np.asarray(slick.polygon_px.exterior.coords)
    assert max(truth_px.distance(Point(p)) for p in px) <= 1.0
    assert slick.polygon_lonlat is not None and scene.raster.georef is not None
    lon0, lat0 = slick.centroid_lonlat or (0.0, 0.0)
    truth_lon, truth_lat = scene.truth(*SLICK.outline().T)
    truth_m = LinearRing(local_metres(truth_lon, truth_lat, lon0, lat0))
    ll = np.asarray(slick.polygon_lonlat.exterior.coords)
    got_m = local_metres(ll[:, 0], ll[:, 1], lon0, lat0)
    pixel_m = max(scene.raster.georef.pixel_size_m())
    assert max(truth_m.distance(Point(p)) for p in got_m) <= pixel_m


def test_length_centroid_and_confidence(scene: Scene, slick: Slick) -> None:
    t = math.radians(SLICK.angle)
    ends_c = np.array([SLICK.cx - SLICK.a * math.cos(t), SLICK.cx + SLICK.a * math.cos(t)])
    ends_r = np.array([SLICK.cy - SLICK.a * math.sin(t), SLICK.cy + SLICK.a * math.sin(t)])
    lon, lat = scene.truth(ends_c, ends_r)
    _, _, true_length_m = GEOD.inv(lon[0], lat[0], lon[1], lat[1])
    assert slick.length_km == pytest.approx(true_length_m / 1e3, rel=0.02)
    assert slick.width_km is not None and slick.length_km is not None and slick.width_km < slick.length_km / 3
    clon, clat = scene.truth(np.array([SLICK.cx]), np.array([SLICK.cy]))
    assert slick.centroid_lonlat is not None and scene.raster.georef is not None
    _, _, off_m = GEOD.inv(clon[0], clat[0], *slick.centroid_lonlat)
    assert off_m < max(scene.raster.georef.pixel_size_m())
    prob = probability(scene.oil)
    assert slick.confidence == pytest.approx(float(np.median(prob[scene.oil])), abs=1e-6)
    assert slick.confidence_max == pytest.approx(float(prob[scene.oil].max()))
    assert not slick.touches_nodata


def test_polygons_are_valid_and_compact(slick: Slick) -> None:
    assert slick.polygon_px.is_valid and slick.polygon_lonlat is not None and slick.polygon_lonlat.is_valid
    assert len(slick.polygon_px.exterior.coords) < 200  # a staircase would have ~1,700


def test_slick_against_the_nodata_border_is_flagged() -> None:
    scene = db_nodata_scene()
    border = Ellipse(cx=820.0, cy=200.0, a=80.0, b=30.0).mask(H, W)  # its right part is under nodata
    edge = Ellipse(cx=200.0, cy=690.0, a=60.0, b=25.0).mask(H, W)  # cut by the image's bottom edge
    mask = np.where(scene.oil | border | edge, 255, 0).astype(np.uint8)
    slicks = vectorise(mask, probability(scene.oil), scene.raster.valid, scene.raster.georef)
    assert len(slicks) == 3
    by_centre = {round(s.centroid_px[0], -2): s for s in slicks}
    assert not by_centre[400.0].touches_nodata
    assert by_centre[800.0].touches_nodata and by_centre[200.0].touches_nodata
    assert by_centre[800.0].centroid_px[0] < 850  # nodata pixels under the mask are not oil
    areas = [s.area_km2 or 0.0 for s in slicks]
    assert areas == sorted(areas, reverse=True) and [s.id for s in slicks] == [1, 2, 3]


def test_not_georeferenced_slicks_in_pixels() -> None:
    oil = SLICK.mask(H, W)
    slicks = vectorise(np.where(oil, 255, 0).astype(np.uint8), probability(oil))
    (slick,) = slicks
    assert not slick.georeferenced and slick.area_km2 is None and slick.centroid_lonlat is None
    assert slick.pixels == int(oil.sum())
    assert slick.pixels == pytest.approx(math.pi * SLICK.a * SLICK.b, rel=0.02)
    a, b = SLICK.a, SLICK.b
    perimeter = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
    assert slick.perimeter_px == pytest.approx(perimeter, rel=0.02)
    assert slick.length_px == pytest.approx(2 * a, rel=0.02)
    assert slick.centroid_px == pytest.approx((SLICK.cx, SLICK.cy), abs=0.5)


def test_minimum_area_filters_and_ids_follow_area() -> None:
    georef = Georef(
        400, 300, rasterio.crs.CRS.from_epsg(32639).to_wkt(), 32639, transform=tuple(UTM_TRANSFORM)[:6]
    )
    mask = np.zeros((300, 400), np.uint8)
    mask[10:20, 10:20] = 255  # 100 px = 0.01 km²
    mask[50:100, 50:150] = 255  # 5,000 px = 0.5 km²
    mask[200:230, 200:230] = 255  # 900 px = 0.09 km²
    prob = np.full(mask.shape, 0.7, np.float32)
    slicks = vectorise(mask, prob, None, georef, min_area_km2=0.05)
    assert [s.pixels for s in slicks] == [5000, 900] and [s.id for s in slicks] == [1, 2]
    assert slicks[0].area_km2 == pytest.approx(0.5, rel=1e-3)
    assert [s.pixels for s in vectorise(mask, prob, min_pixels=500)] == [5000, 900]
    assert [s.pixels for s in vectorise(mask, prob, max_slicks=1)] == [5000]


def test_four_connectivity_holes_and_islands() -> None:
    mask = np.zeros((60, 60), np.uint8)
    mask[5:15, 5:15] = 255
    mask[15:25, 15:25] = 255  # touches the first only at a corner: another slick
    mask[30:58, 30:58] = 255
    mask[36:52, 36:52] = 0  # a hole
    mask[40:48, 40:48] = 255  # an island in the hole
    prob = np.full(mask.shape, 0.6, np.float32)
    prob[40:48, 40:48] = 0.9
    slicks = vectorise(mask, prob)
    assert sorted(s.pixels for s in slicks) == [64, 100, 100, 28 * 28 - 16 * 16]
    ring = next(s for s in slicks if s.pixels == 28 * 28 - 16 * 16)
    island = next(s for s in slicks if s.pixels == 64)
    assert len(ring.polygon_px.interiors) == 1 and ring.confidence == pytest.approx(0.6)
    assert island.confidence == pytest.approx(0.9)
    assert all(s.polygon_px.is_valid for s in slicks)


def test_empty_mask_and_shape_mismatch() -> None:
    assert vectorise(np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.float32)) == []
    with pytest.raises(ValueError):
        vectorise(np.zeros((10, 10), np.uint8), np.zeros((10, 11), np.float32))


def test_one_pixel_slick_keeps_its_pixel_area() -> None:
    georef = Georef(
        20, 20, rasterio.crs.CRS.from_epsg(32639).to_wkt(), 32639, transform=tuple(UTM_TRANSFORM)[:6]
    )
    mask = np.zeros((20, 20), np.uint8)
    mask[10, 10] = 255
    (slick,) = vectorise(mask, np.ones((20, 20), np.float32), None, georef)
    assert slick.area_km2 == pytest.approx(1e-4 / 0.99972**2, rel=1e-3)
    assert slick.polygon_px.is_valid and slick.polygon_px.area > 0


def test_smooth_outline_straightens_a_staircase() -> None:
    stairs = Polygon([(0, 0), (10, 0), (10, 1), (20, 1), (20, 2), (30, 2), (30, 12), (0, 12)])
    smooth = smooth_outline(stairs)
    assert smooth.is_valid and len(smooth.exterior.coords) < len(stairs.exterior.coords)
    assert smooth.area == pytest.approx(stairs.area, rel=0.02)


def test_large_mask_is_fast() -> None:
    n = 6000
    rows, cols = np.ogrid[0:n, 0:n]
    mask = np.zeros((n, n), np.uint8)
    for cy, cx, a, b in [(1500, 2000, 900, 200), (4000, 4500, 1200, 300), (5000, 1000, 200, 200)]:
        mask[((rows - cy) / b) ** 2 + ((cols - cx) / a) ** 2 <= 1] = 255
    prob = np.full((n, n), 0.8, np.float32)
    georef = Georef(
        n, n, rasterio.crs.CRS.from_epsg(32639).to_wkt(), 32639, transform=tuple(UTM_TRANSFORM)[:6]
    )
    started = time.perf_counter()
    slicks = vectorise(mask, prob, None, georef)
    assert time.perf_counter() - started < 10.0  # ~0.3 s measured on two busy cores
    assert [s.pixels for s in slicks] == sorted((s.pixels for s in slicks), reverse=True) and len(slicks) == 3


def test_smooth_outline_keeps_a_rectangle() -> None:
    rectangle = Polygon([(10, 10), (110, 10), (110, 60), (10, 60)])
    smooth = smooth_outline(rectangle)
    assert smooth.area == pytest.approx(rectangle.area, abs=1.0)
    assert smooth.hausdorff_distance(rectangle) <= 0.5


def test_specks_under_the_minimum_are_dropped_and_holes_kept() -> None:
    """Regions below min_pixels never become polygons; a kept slick keeps its holes and exact pixels."""
    rng = np.random.default_rng(0)
    mask = np.where(rng.random((256, 256)) < 0.02, 255, 0).astype(np.uint8)  # ~1,000 specks
    mask[60:120, 40:200] = 255
    mask[80:83, 100:103] = 0  # a 9-pixel hole, under the minimum: it must stay a hole
    prob = np.full(mask.shape, 0.9, np.float32)
    everything = vectorise(mask, prob, min_pixels=1)
    kept = vectorise(mask, prob, min_pixels=16)
    assert len(everything) > 500 and len(kept) == 1
    big = next(s for s in everything if s.pixels == kept[0].pixels)
    assert kept[0].polygon_px.equals(big.polygon_px) and len(kept[0].polygon_px.interiors) >= 1
