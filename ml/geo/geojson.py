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

The job-level merge and the CSV table are `common.slicks` (the worker builds them too): the job's
`slicks.geojson` holds only georeferenced Features by default, so that it stays valid RFC 7946 and a web map
never draws pixel numbers as degrees near (0, 0). All of this is plain dicts and strings: `json.dumps` them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from ml.geo.vectorise import Slick

LONLAT_DECIMALS = 7
PIXEL_DECIMALS = 3


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
