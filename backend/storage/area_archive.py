"""archive.zip of an area job: what an upload's archive holds, per scene window (masks, COG masks, slicks),
plus scenes.json (each scene's STAC item id, datetime, platform, footprint and windows: the fetching stage's
area.json) and one slicks.geojson/slicks.csv whose slicks are clipped to the requested bboxes.

A window is read a pixel or so beyond its bbox, and windows of overlapping scenes see the same sea: the
job's slicks keep only what lies inside the bboxes, a slick cut by a bbox's edge getting its clipped outline
and the geodesic area of that outline (`clipped: true`).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from typing import Any

from pyproj import Geod
from shapely.geometry import Polygon, box, mapping, shape
from shapely.ops import unary_union

from backend.sources.manifest import AreaManifest, read_manifest
from backend.sources.request import BBox
from backend.storage import parts, slicks
from backend.storage.archive import Report, report_csv
from backend.storage.layout import UserDir

GEOD = Geod(ellps="WGS84")
SCENES_JSON = "scenes.json"
Collection = dict[str, Any]


def clip_collections(collections: list[Collection], bboxes: list[BBox]) -> list[Collection]:
    """The collections with every slick clipped to the union of the bboxes (outside: dropped; cut in
    several pieces: one Feature each, ids "<id>.<k>")."""
    area = unary_union([box(*b) for b in bboxes])
    clipped: list[Collection] = []
    for collection in collections:
        features = []
        for feature in collection.get("features", []):
            geometry = shape(feature["geometry"])
            if area.contains(geometry):
                features.append(feature)
                continue
            inside = geometry.intersection(area)
            pieces = [
                g for g in getattr(inside, "geoms", [inside]) if isinstance(g, Polygon) and not g.is_empty
            ]
            for k, piece in enumerate(pieces, 1):
                km2, km = GEOD.geometry_area_perimeter(piece)
                props = {**feature["properties"], "area_km2": abs(km2) / 1e6, "perimeter_km": km / 1e3}
                props["clipped"] = True
                fid = feature["id"] if len(pieces) == 1 else f"{feature['id']}.{k}"
                features.append({**feature, "id": fid, "geometry": mapping(piece), "properties": props})
        clipped.append({**collection, "features": features})
    return clipped


def write_area_archive(folder: UserDir, report: Report, located: Mapping[str, str]) -> Any:
    """Write the area job's archive.zip atomically (as backend.storage.archive.write_archive)."""
    manifest: AreaManifest = read_manifest(folder.root)
    tmp = folder.root / f".archive.{os.getpid()}.tmp"
    by_part: dict[str, list[str]] = {}
    for image in report.images:
        if image.status == "ok":
            by_part.setdefault(located[image.output], []).append(image.output)
    collections = clip_collections(slicks.from_parts(folder, report.images, located), manifest.bboxes)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for part, outputs in by_part.items():
                parts.copy_outputs(zf, folder.part_path(part), outputs)
            slicks.write_job_files(zf, collections)
            deflated = zipfile.ZIP_DEFLATED
            zf.writestr(SCENES_JSON, manifest.model_dump_json(indent=2), compress_type=deflated)
            zf.writestr("report.json", report.model_dump_json(indent=2), compress_type=deflated)
            zf.writestr("report.csv", report_csv(report), compress_type=deflated)
        os.replace(tmp, folder.archive)
    finally:
        tmp.unlink(missing_ok=True)
    return folder.archive
