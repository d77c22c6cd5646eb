"""Slick collections shaped as the ML service writes them (ml.geo.geojson), made by hand for backend tests.

A plain module (not conftest) so that test modules import it by a name no other test folder uses.
"""

from __future__ import annotations

import json
from typing import Any

from backend.jobs.models import ImageGeo


def feature(image: str, n: int, *, area: float, georeferenced: bool = True) -> dict[str, Any]:
    """Slick `n` of `image`: a square of `area` km² (lon/lat) or `area` pixels (pixel coordinates)."""
    if georeferenced:
        ring = [[51.5, 27.0], [51.51, 27.0], [51.51, 27.01], [51.5, 27.01], [51.5, 27.0]]
        centroid = [51.505, 27.005]
        km: dict[str, float | None] = {
            "area_km2": area,
            "perimeter_km": 4.0,
            "length_km": 1.2 * n,
            "width_km": 1.0,
        }
        pixels = int(area * 10_000)
    else:
        ring = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]]
        centroid = [5.0, 5.0]
        km = {"area_km2": None, "perimeter_km": None, "length_km": None, "width_km": None}
        pixels = int(area)
    properties = {
        "id": n,
        "image": image,
        "georeferenced": georeferenced,
        **km,
        "centroid": centroid,
        "confidence": 0.9,
        "confidence_max": 0.99,
        "pixels": pixels,
        "area_px": pixels,
        "perimeter_px": 40.0,
        "length_px": 12.5 * n,
        "centroid_px": [5.0, 5.0],
        "touches_nodata": False,
        "acquired": "2024-05-02T02:41:07.123000Z" if georeferenced else None,
    }
    geometry = {"type": "Polygon", "coordinates": [ring]}
    return {"type": "Feature", "id": f"{image}#{n}", "geometry": geometry, "properties": properties}


def collection(image: str, areas: list[float], *, georeferenced: bool = True) -> dict[str, Any]:
    """An image's slicks/<name>.geojson, its slicks numbered 1..n in the order of `areas`."""
    features = [feature(image, n, area=a, georeferenced=georeferenced) for n, a in enumerate(areas, 1)]
    return {"type": "FeatureCollection", "image": image, "georeferenced": georeferenced, "features": features}


def encoded(image: str, areas: list[float], *, georeferenced: bool = True) -> bytes:
    return json.dumps(collection(image, areas, georeferenced=georeferenced), separators=(",", ":")).encode()


def geo(georeferenced: bool, slicks: int = 1, oil_km2: float | None = 0.5) -> ImageGeo:
    """An image's GeoInfo as the ML service reports it."""
    if not georeferenced:
        return ImageGeo(georeferenced=False, reason="not a GeoTIFF", slicks=slicks)
    return ImageGeo(
        georeferenced=True,
        crs="EPSG:32639",
        georeferencing="affine",
        bounds=[51.5, 27.0, 51.53, 27.03],
        pixel_size_m=[10.0, 10.0],
        acquired="2024-05-02T02:41:07.123000Z",
        slicks=slicks,
        slicks_on_land=1,
        oil_km2=oil_km2,
    )
