"""`python -m backend.cli slicks JOB_OR_HASH`, and the table `upload --wait` prints at a job's end.

One row per slick, largest first: the georeferenced ones by km², then those of images without
georeferencing (pixel coordinates) by pixels. Read from `GET /api/results/{user_hash}/slicks`, with
`include_pixel=true`.
"""

from __future__ import annotations

from typing import Any

import httpx

from backend.cli.http import EXIT_REFUSED, CLIError, check

HEADERS = ("image", "id", "area", "length", "centroid (lat, lon)", "confidence")


def fetch(client: httpx.Client, key: str) -> dict[str, Any]:
    """The FeatureCollection of an upload, `key` being its user hash or its job id.

    Both are 32 hex digits: tried as a user hash first, then as a job id, whose status names the upload's
    download URL and so its user hash.
    """
    response = client.get(f"/api/results/{key}/slicks", params={"include_pixel": "true"})
    if response.status_code == 404:
        status = client.get(f"/api/status/{key}")
        if status.status_code == 404:
            raise CLIError(f"HTTP 404: no upload or job {key}", EXIT_REFUSED)
        user_hash = str(check(status).json()["download_url"]).rstrip("/").rsplit("/", 1)[-1]
        response = client.get(f"/api/results/{user_hash}/slicks", params={"include_pixel": "true"})
    collection: dict[str, Any] = check(response).json()
    return collection


def _sort_key(feature: dict[str, Any]) -> tuple[int, float, str]:
    p = feature["properties"]
    if p.get("georeferenced") and p.get("area_km2") is not None:
        return 0, -float(p["area_km2"]), str(feature.get("id", ""))
    return 1, -float(p.get("area_px") or 0), str(feature.get("id", ""))


def _row(feature: dict[str, Any]) -> tuple[str, ...]:
    p = feature["properties"]
    confidence = f"{p['confidence']:.2f}"
    if p.get("georeferenced") and p.get("area_km2") is not None:
        lon, lat = p["centroid"]
        length = f"{p['length_km']:.3f} km" if p.get("length_km") is not None else "-"
        return (
            str(p["image"]),
            str(p["id"]),
            f"{p['area_km2']:.3f} km²",
            length,
            f"{lat:.5f}, {lon:.5f}",
            confidence,
        )
    col, row = p["centroid_px"]
    return (
        str(p["image"]),
        str(p["id"]),
        f"{p['area_px']} px",
        f"{p['length_px']:.1f} px",
        f"(pixel {col:.1f}, {row:.1f})",
        confidence,
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def table(collection: dict[str, Any]) -> str:
    """The slick table of a FeatureCollection, with a closing line of totals."""
    features = sorted(collection.get("features", []), key=_sort_key)
    if not features:
        return "no slicks found"
    rows = [HEADERS, *(_row(f) for f in features)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    numbers = {1, 2, 3, 5}  # right-aligned columns
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in numbers else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    georef = [f for f in features if _sort_key(f)[0] == 0]
    km2 = sum(float(f["properties"]["area_km2"]) for f in georef)
    images = len({f["properties"]["image"] for f in features})
    total = f"{_plural(len(features), 'slick')} in {_plural(images, 'image')}: {km2:.3f} km² georeferenced"
    if len(georef) < len(features):
        total += f"; {len(features) - len(georef)} in pixel coordinates (image not georeferenced)"
    return "\n".join([*lines, total])
