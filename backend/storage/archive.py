"""archive.zip of a finished job: its masks and overlays, copied from the parts, report.json, report.csv."""

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
from backend.storage import parts
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
        row = image.model_dump(exclude_none=True)
        writer.writerow({**row, **job})
    return out.getvalue()


def write_archive(folder: UserDir, report: Report, located: Mapping[str, str]) -> Path:
    """Write archive.zip atomically (temporary file + os.replace): readers see no file or the whole one.

    The masks and overlays of the ok images are copied from their parts (`located`: output -> part id), in
    the report's order. PNGs are stored (ZIP_STORED): they are already deflated and recompressing them
    costs CPU for nothing.
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
            zf.writestr("report.json", report.model_dump_json(indent=2), compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr("report.csv", report_csv(report), compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, folder.archive)
    finally:
        tmp.unlink(missing_ok=True)
    return folder.archive
