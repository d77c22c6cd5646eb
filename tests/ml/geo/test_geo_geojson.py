"""ml.geo.geojson: RFC 7946 collections per image and per job, pixel-coordinate ones, and the CSV table."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import rasterio
from geo_samples import UTM_TRANSFORM
from shapely.geometry import LinearRing

from common.slicks import CSV_COLUMNS, merge_collections, to_csv
from ml.geo.geojson import feature_collection
from ml.geo.georef import Georef
from ml.geo.vectorise import Slick, vectorise

PROPERTIES = {
    "id", "image", "georeferenced", "area_km2", "perimeter_km", "length_km", "width_km", "centroid",
    "confidence", "confidence_max", "pixels", "area_px", "perimeter_px", "length_px", "centroid_px",
    "touches_nodata", "acquired",
}  # fmt: skip


def ring_mask() -> np.ndarray:
    mask = np.zeros((200, 300), np.uint8)
    mask[40:160, 50:250] = 255
    mask[80:120, 100:200] = 0  # a hole
    mask[5:15, 270:290] = 255
    return mask


def slicks(georeferenced: bool) -> list[Slick]:
    georef = Georef(
        300, 200, rasterio.crs.CRS.from_epsg(32639).to_wkt(), 32639, transform=tuple(UTM_TRANSFORM)[:6]
    )
    mask = ring_mask()
    return vectorise(
        mask, np.where(mask > 0, 0.75, 0.1).astype(np.float32), None, georef if georeferenced else None
    )


def test_rfc7946_collection_of_a_georeferenced_image() -> None:
    collection = feature_collection(
        slicks(True), image="scene.tif", georeferenced=True, acquired="2023-01-15T03:14:15Z"
    )
    collection = json.loads(json.dumps(collection))
    assert collection["type"] == "FeatureCollection" and collection["georeferenced"] is True
    first, second = collection["features"]
    assert first["type"] == "Feature" and first["id"] == "scene.tif#1" and second["id"] == "scene.tif#2"
    assert set(first["properties"]) == PROPERTIES
    p = first["properties"]
    assert (
        p["image"] == "scene.tif" and p["acquired"] == "2023-01-15T03:14:15Z" and p["georeferenced"] is True
    )
    assert p["pixels"] == p["area_px"] == 120 * 200 - 40 * 100
    assert p["area_km2"] == pytest.approx(p["pixels"] * 1e-4, rel=2e-3)
    assert p["confidence"] == p["confidence_max"] == 0.75
    lon, lat = p["centroid"]
    assert 51.9 < lon < 52.1 and 26.9 < lat < 27.1
    geometry = first["geometry"]
    assert geometry["type"] == "Polygon" and len(geometry["coordinates"]) == 2
    exterior, hole = (LinearRing(ring) for ring in geometry["coordinates"])
    assert exterior.is_ccw and not hole.is_ccw  # the right-hand rule
    for ring in geometry["coordinates"]:
        assert ring[0] == ring[-1]
        for x, y in ring:
            assert round(x, 7) == x and round(y, 7) == y and -180 <= x <= 180 and -90 <= y <= 90


def test_pixel_coordinates_for_an_image_without_georeferencing() -> None:
    collection = feature_collection(slicks(False), image="plain.png", georeferenced=False)
    assert collection["georeferenced"] is False
    p = collection["features"][0]["properties"]
    assert p["georeferenced"] is False and p["area_km2"] is None and p["perimeter_km"] is None
    assert p["area_px"] == 120 * 200 - 40 * 100 and p["centroid"] == p["centroid_px"]
    xs = [x for x, _ in collection["features"][0]["geometry"]["coordinates"][0]]
    assert min(xs) == 50 and max(xs) == 250  # pixel numbers, not degrees
    with pytest.raises(ValueError):
        feature_collection(slicks(False), image="plain.png", georeferenced=True)


def test_empty_collection() -> None:
    collection = feature_collection([], image="calm.tif", georeferenced=True)
    assert collection["features"] == [] and merge_collections([collection])["features"] == []


def test_merge_keeps_only_lon_lat_features_by_default() -> None:
    geo = feature_collection(slicks(True), image="a.tif", georeferenced=True)
    plain = feature_collection(slicks(False), image="b.png", georeferenced=False)
    merged = merge_collections([geo, plain])
    assert merged["type"] == "FeatureCollection" and len(merged["features"]) == 2
    assert {f["properties"]["image"] for f in merged["features"]} == {"a.tif"}
    assert merged["not_georeferenced"] == ["b.png"]
    everything = merge_collections([geo, plain], include_pixel=True)
    assert len(everything["features"]) == 4 and "not_georeferenced" not in everything


def test_csv_has_the_same_columns_and_a_row_per_slick() -> None:
    geo = feature_collection(slicks(True), image="a.tif", georeferenced=True, acquired="2023-01-15T03:14:15Z")
    plain = feature_collection(slicks(False), image="b.png", georeferenced=False)
    rows = list(csv.DictReader(io.StringIO(to_csv([geo, plain]))))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 4
    first = rows[0]
    assert first["image"] == "a.tif" and first["id"] == "1" and first["georeferenced"] == "true"
    assert float(first["area_km2"]) == geo["features"][0]["properties"]["area_km2"]
    assert float(first["centroid_lon"]) == geo["features"][0]["properties"]["centroid"][0]
    assert first["acquired"] == "2023-01-15T03:14:15Z" and first["touches_nodata"] == "false"
    pixel_row = rows[2]
    assert (
        pixel_row["georeferenced"] == "false"
        and pixel_row["area_km2"] == ""
        and pixel_row["centroid_lon"] == ""
    )
    assert int(pixel_row["area_px"]) == 120 * 200 - 40 * 100 and pixel_row["acquired"] == ""
