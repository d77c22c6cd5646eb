"""A job's slicks: each image's GeoJSON collection (slicks/<stem>.geojson in its part and in the archive),
and the job-level slicks.geojson and slicks.csv that the archive holds at its root.

The merge and the CSV are common.slicks (the contract's shape): the job's slicks.geojson is RFC 7946, lon/lat
Features only, with the images in pixel coordinates named in its `not_georeferenced`; slicks.csv has a row
per Feature of every image, pixel ones included. Images are taken in the report's order (by name).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from backend.jobs.models import ImageResult
from backend.storage import parts
from backend.storage.layout import UserDir
from common.slicks import merge_collections, to_csv

SLICKS_GEOJSON = "slicks.geojson"
SLICKS_CSV = "slicks.csv"
_READ_ERRORS = (OSError, zipfile.BadZipFile, EOFError, ValueError)

Collection = dict[str, Any]


def image_collection(data: bytes, name: str) -> bytes:
    """The ML service's collection of one image, named after the image's path in the uploaded zip.

    The service names Features after the file name it was sent ("<filename>#<n>", `image`); the worker
    sends base names, so `a/x.tif` and `b/x.tif` would share ids. Here `image` becomes `name` on the
    collection and every Feature, and `id` "<name>#<n>". ValueError if `data` is not such a collection.
    """
    try:
        collection = json.loads(data)
        features = collection["features"]
        if collection.get("type") != "FeatureCollection" or not isinstance(features, list):
            raise ValueError("not a FeatureCollection")
        collection["image"] = name
        for feature in features:
            properties = feature["properties"]
            properties["image"] = name
            feature["id"] = f"{name}#{properties['id']}"
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"ML service returned unreadable slicks: {exc!r}") from exc
    return json.dumps(collection, separators=(",", ":")).encode()


def read_collections(path: Path, outputs: Iterable[str]) -> dict[str, Collection]:
    """output -> its slicks collection, read from a part or the archive; outputs without one are left out
    (an image segmented before slicks existed), and so is everything when the zip cannot be read."""
    found: dict[str, Collection] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for output in outputs:
                entry = parts.slicks_name(output)
                if entry in names:
                    found[output] = json.loads(zf.read(entry))
    except _READ_ERRORS:
        return found
    return found


def from_parts(
    folder: UserDir, results: Iterable[ImageResult], located: Mapping[str, str]
) -> list[Collection]:
    """The collections of the ok images of `results` (in that order), read from their parts (`located`:
    output -> part id); an image whose part is unknown, gone or lacks its slicks is left out."""
    ok = [res.output for res in results if res.status == "ok"]
    by_part: dict[str, list[str]] = {}
    for output in ok:
        if output in located:
            by_part.setdefault(located[output], []).append(output)
    found: dict[str, Collection] = {}
    for part, outputs in by_part.items():
        try:
            path = folder.part_path(part)
        except ValueError:  # not a part id: a tampered record
            continue
        found.update(read_collections(path, outputs))
    return [found[out] for out in ok if out in found]


def from_archive(path: Path, results: Iterable[ImageResult]) -> list[Collection]:
    """The collections of the ok images of `results` (in that order), read from a finished archive."""
    ok = [res.output for res in results if res.status == "ok"]
    found = read_collections(path, ok)
    return [found[out] for out in ok if out in found]


def archived_geojson(path: Path) -> bytes | None:
    """The job-level slicks.geojson of an archive as written; None if it has none (an older archive)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.read(SLICKS_GEOJSON)
    except (*_READ_ERRORS, KeyError):
        return None


def merged_geojson(collections: Iterable[Collection], *, include_pixel: bool = False) -> bytes:
    """The job's FeatureCollection as slicks.geojson holds it (see common.slicks.merge_collections)."""
    merged = merge_collections(collections, include_pixel=include_pixel)
    return json.dumps(merged, separators=(",", ":")).encode()


def write_job_files(dest: zipfile.ZipFile, collections: list[Collection]) -> None:
    """slicks.geojson and slicks.csv at the root of an archive being written (deflated: text)."""
    dest.writestr(SLICKS_GEOJSON, merged_geojson(collections), compress_type=zipfile.ZIP_DEFLATED)
    dest.writestr(SLICKS_CSV, to_csv(collections), compress_type=zipfile.ZIP_DEFLATED)
