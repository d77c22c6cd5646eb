"""A job's slicks: every image's GeoJSON collection merged into one, and the same Features as a CSV table.

Shared by the ML service (which writes each image's collection, ml.geo.geojson) and the worker (which merges
them into the archive's slicks.geojson and slicks.csv): the collection's shape is part of the contract.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

CSV_COLUMNS = (
    "image",
    "id",
    "georeferenced",
    "area_km2",
    "perimeter_km",
    "length_km",
    "width_km",
    "centroid_lon",
    "centroid_lat",
    "confidence",
    "confidence_max",
    "pixels",
    "area_px",
    "perimeter_px",
    "length_px",
    "centroid_col",
    "centroid_row",
    "touches_nodata",
    "acquired",
)


def merge_collections(
    collections: Iterable[dict[str, Any]], *, include_pixel: bool = False
) -> dict[str, Any]:
    """The job's slicks.geojson: every image's Features in one collection, in the order given.

    Without `include_pixel`, Features in pixel coordinates are left out (see the module docstring) and their
    images named in `not_georeferenced`.
    """
    features: list[dict[str, Any]] = []
    left_out: list[str] = []
    for collection in collections:
        if not collection.get("georeferenced", True) and not include_pixel:
            left_out.append(str(collection.get("image", "")))
            continue
        features.extend(collection["features"])
    merged: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if left_out:
        merged["not_georeferenced"] = left_out
    return merged


def csv_row(feature: dict[str, Any]) -> dict[str, Any]:
    """A Feature's properties flattened to CSV_COLUMNS (lon/lat empty when not georeferenced)."""
    p = feature["properties"]
    georef = bool(p["georeferenced"])
    lon, lat = p["centroid"] if georef else (None, None)
    col, row = p["centroid_px"]
    flat = {**p, "centroid_lon": lon, "centroid_lat": lat, "centroid_col": col, "centroid_row": row}
    flat["georeferenced"] = "true" if georef else "false"
    flat["touches_nodata"] = "true" if p["touches_nodata"] else "false"
    return {k: "" if flat.get(k) is None else flat[k] for k in CSV_COLUMNS}


def to_csv(collections: Iterable[dict[str, Any]]) -> str:
    """slicks.csv: a CSV_COLUMNS header, one row per Feature of every collection (pixel ones included)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for collection in collections:
        for feature in collection["features"]:
            writer.writerow(csv_row(feature))
    return out.getvalue()
