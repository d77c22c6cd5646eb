"""archive.zip of a finished job: its masks, overlays and slicks, copied from the parts; the job's
slicks.geojson and slicks.csv (backend.storage.slicks); report.json and report.csv."""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from backend.jobs.models import ImageResult
from backend.storage import parts, slicks
from backend.storage.layout import UserDir


class Report(BaseModel):
    """report.json inside archive.zip."""

    job_id: str
    model_version: str | None
    created_at: datetime
    finished_at: datetime
    total: int
    done: int
    failed: int
    images: list[ImageResult]


CSV_COLUMNS = (
    "name",
    "output",
    "width",
    "height",
    "oil_pixels",
    "oil_fraction",
    "scale",
    "valid_fraction",
    "status",
    "error",
    "georeferenced",
    "georef_reason",
    "crs",
    "georeferencing",
    "west",
    "south",
    "east",
    "north",
    "pixel_size_x_m",
    "pixel_size_y_m",
    "acquired",
    "slicks",
    "slicks_on_land",
    "oil_km2",
    "job_id",
    "model_version",
    "created_at",
    "finished_at",
)


def report_csv(report: Report) -> str:
    """One row per image; the job-level columns repeat so each row stands alone in a spreadsheet."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    job = {
        "job_id": report.job_id,
        "model_version": report.model_version or "",
        "created_at": report.created_at.isoformat(),
        "finished_at": report.finished_at.isoformat(),
    }
    for image in report.images:
        row: dict[str, object] = image.model_dump(exclude_none=True, exclude={"geo"})
        writer.writerow({**row, **_geo_columns(image), **job})
    return out.getvalue()


def _geo_columns(image: ImageResult) -> dict[str, object]:
    """An image's `geo`, flattened: bounds and pixel size one number a column; empty for a failed image."""
    geo = image.geo
    if geo is None:
        return {}
    row: dict[str, object] = {
        "georeferenced": "true" if geo.georeferenced else "false",
        "georef_reason": geo.reason,
        "crs": geo.crs,
        "georeferencing": geo.georeferencing,
        "acquired": geo.acquired,
        "slicks": geo.slicks,
        "slicks_on_land": geo.slicks_on_land,
        "oil_km2": geo.oil_km2,
    }
    if geo.bounds is not None and len(geo.bounds) == 4:
        row.update(zip(("west", "south", "east", "north"), geo.bounds, strict=True))
    if geo.pixel_size_m is not None and len(geo.pixel_size_m) == 2:
        row.update(zip(("pixel_size_x_m", "pixel_size_y_m"), geo.pixel_size_m, strict=True))
    return {key: value for key, value in row.items() if value is not None}


def write_archive(folder: UserDir, report: Report, located: Mapping[str, str]) -> Path:
    """Write archive.zip atomically (temporary file + os.replace): readers see no file or the whole one.

    The files of the ok images (PNG masks and overlays; COG masks and slicks where made) are copied from
    their parts (`located`: output -> part id), in the report's order, and their slicks merged into the
    job's slicks.geojson and slicks.csv. Images are stored (ZIP_STORED): they are already compressed and
    recompressing them costs CPU for nothing; the reports and the job's slicks are deflated.
    """
    tmp = folder.root / f".archive.{os.getpid()}.tmp"
    by_part: dict[str, list[str]] = {}
    for image in report.images:
        if image.status == "ok":
            by_part.setdefault(located[image.output], []).append(image.output)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for part, outputs in by_part.items():
                parts.copy_outputs(zf, folder.part_path(part), outputs)
            slicks.write_job_files(zf, slicks.from_parts(folder, report.images, located))
            zf.writestr("report.json", report.model_dump_json(indent=2), compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr("report.csv", report_csv(report), compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, folder.archive)
    finally:
        tmp.unlink(missing_ok=True)
    return folder.archive
