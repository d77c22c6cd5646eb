"""Slicks as GeoJSON FeatureCollections (per image and per job) and as one CSV table.

Georeferenced images give RFC 7946 collections: lon/lat on WGS 84, exterior rings counter-clockwise and holes
clockwise (the right-hand rule), coordinates rounded to 1e-7 degree (~1 cm). One Feature per slick, its `id`
member "<image>#<n>" (unique within a job), its properties:

    id, image, georeferenced, area_km2, perimeter_km, length_km, width_km, centroid [lon, lat], confidence,
    confidence_max, pixels, area_px, perimeter_px, length_px, centroid_px [col, row], touches_nodata, acquired

Images without georeferencing get the same Features with geometry and `centroid` in **pixel coordinates**
(col, row; x right, y down; rounded to 1e-3): that is not RFC 7946 (which is lon/lat only), and
`georeferenced: false` on every Feature and on the collection says so; the km fields are null, `area_px` is
the area. Rings are oriented by the same rule in pixel numbers (which, y pointing down, look clockwise on
screen).

`merge_collections` makes the job's `slicks.geojson`: by default only georeferenced Features, so that it stays
valid RFC 7946 and a web map never draws pixel numbers as degrees near (0, 0); the images left out are listed
in the foreign member `not_georeferenced`. `to_csv` writes one row per Feature (georeferenced or not) with
`CSV_COLUMNS`. All of this is plain dicts and strings: `json.dumps` them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from ml.geo.vectorise import Slick

LONLAT_DECIMALS = 7
PIXEL_DECIMALS = 3
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


def polygon_geometry(polygon: Polygon, decimals: int) -> dict[str, Any]:
    """A GeoJSON Polygon: exterior counter-clockwise, holes clockwise, coordinates rounded."""
    oriented = orient(polygon, sign=1.0)

    def ring(coords: Iterable[tuple[float, ...]]) -> list[list[float]]:
        return [[round(x, decimals), round(y, decimals)] for x, y, *_ in coords]

    return {
        "type": "Polygon",
        "coordinates": [ring(oriented.exterior.coords), *(ring(hole.coords) for hole in oriented.interiors)],
    }


def _round(value: float | None, decimals: int) -> float | None:
    return None if value is None else round(value, decimals)


def slick_feature(slick: Slick, *, image: str, acquired: str | None = None) -> dict[str, Any]:
    """One slick as a GeoJSON Feature (lon/lat when georeferenced, else pixel coordinates)."""
    col, row = slick.centroid_px
    centroid_px = [round(col, PIXEL_DECIMALS), round(row, PIXEL_DECIMALS)]
    if slick.polygon_lonlat is not None and slick.centroid_lonlat is not None:
        geometry = polygon_geometry(slick.polygon_lonlat, LONLAT_DECIMALS)
        centroid = [
            round(slick.centroid_lonlat[0], LONLAT_DECIMALS),
            round(slick.centroid_lonlat[1], LONLAT_DECIMALS),
        ]
    else:
        geometry = polygon_geometry(slick.polygon_px, PIXEL_DECIMALS)
        centroid = centroid_px
    properties = {
        "id": slick.id,
        "image": image,
        "georeferenced": slick.georeferenced,
        "area_km2": _round(slick.area_km2, 6),
        "perimeter_km": _round(slick.perimeter_km, 4),
        "length_km": _round(slick.length_km, 4),
        "width_km": _round(slick.width_km, 4),
        "centroid": centroid,
        "confidence": round(slick.confidence, 4),
        "confidence_max": round(slick.confidence_max, 4),
        "pixels": slick.pixels,
        "area_px": slick.pixels,
        "perimeter_px": round(slick.perimeter_px, 2),
        "length_px": round(slick.length_px, 2),
        "centroid_px": centroid_px,
        "touches_nodata": slick.touches_nodata,
        "acquired": acquired,
    }
    return {"type": "Feature", "id": f"{image}#{slick.id}", "geometry": geometry, "properties": properties}


def feature_collection(
    slicks: Sequence[Slick], *, image: str, georeferenced: bool, acquired: str | None = None
) -> dict[str, Any]:
    """An image's slicks/<name>.geojson; `georeferenced` says what its slicks are (it matters for none)."""
    if any(s.georeferenced != georeferenced for s in slicks):
        raise ValueError("every slick of a collection must match its `georeferenced`")
    return {
        "type": "FeatureCollection",
        "image": image,
        "georeferenced": georeferenced,
        "features": [slick_feature(s, image=image, acquired=acquired) for s in slicks],
    }


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
