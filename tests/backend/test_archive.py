from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from backend.jobs.models import ImageResult
from backend.storage import archive, parts
from backend.storage.archive import Report
from backend.storage.layout import ResultsDir, UserDir, new_token


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_report(folder: UserDir) -> tuple[Report, dict[str, str]]:
    """A report of two ok images (stored in two parts) and a failed one; output -> part of the ok ones."""
    images = [
        ImageResult(
            name="a/x.jpg", output="a/x.png", status="ok", width=4, height=2, oil_pixels=2, oil_fraction=0.25
        ),
        ImageResult(
            name="b/x.jpg", output="b/x.png", status="ok", width=4, height=2, oil_pixels=0, oil_fraction=0.0
        ),
        ImageResult(
            name="bad.png", output="bad.png", status="failed", error="ML service rejected the image: 400"
        ),
    ]
    located = {}
    for image in images[:2]:
        mask = np.zeros((2, 4), np.uint8)
        mask[0, : (image.oil_pixels or 0)] = 255
        mask_png, overlay_png = png(Image.fromarray(mask)), png(Image.fromarray(mask).convert("P"))
        part = parts.part_id([image.name])
        parts.write_part(folder.part_path(part), [parts.Outputs(image.output, mask_png, overlay_png)])
        located[image.output] = part
    report = Report(
        job_id="j" * 32,
        model_version="slicknet-7",
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        finished_at=datetime(2024, 5, 1, 12, 1, tzinfo=UTC),
        total=3,
        done=2,
        failed=1,
        images=images,
    )
    return report, located


def test_archive_holds_masks_overlays_and_reports(tmp_path: Path) -> None:
    folder = ResultsDir(tmp_path).user(new_token())
    rep, located = make_report(folder)
    path = archive.write_archive(folder, rep, located)
    assert path == folder.archive
    assert sorted(p.name for p in folder.root.iterdir()) == ["archive.zip", "parts"]  # no temp left
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert names == {
            "masks/a/x.png",
            "masks/b/x.png",
            "overlays/a/x.png",
            "overlays/b/x.png",
            "report.json",
            "report.csv",
        }
        for info in zf.infolist():
            if info.filename.endswith(".png"):
                assert info.compress_type == zipfile.ZIP_STORED
        with zipfile.ZipFile(folder.part_path(located["a/x.png"])) as part:
            assert zf.read("masks/a/x.png") == part.read("masks/a/x.png")
            assert zf.read("overlays/a/x.png") == part.read("overlays/a/x.png")
        data = json.loads(zf.read("report.json"))
        rows = list(csv.DictReader(io.StringIO(zf.read("report.csv").decode())))
    assert data["job_id"] == "j" * 32 and data["model_version"] == "slicknet-7"
    assert data["done"] == 2 and data["failed"] == 1
    assert [i["name"] for i in data["images"]] == ["a/x.jpg", "b/x.jpg", "bad.png"]
    assert [row["name"] for row in rows] == ["a/x.jpg", "b/x.jpg", "bad.png"]
    assert rows[0]["oil_pixels"] == "2" and rows[0]["oil_fraction"] == "0.25" and rows[0]["status"] == "ok"
    assert rows[2]["status"] == "failed" and rows[2]["error"].startswith("ML service rejected")
    assert {row["job_id"] for row in rows} == {"j" * 32}
    assert rows[0]["model_version"] == "slicknet-7" and rows[0]["finished_at"].startswith("2024-05-01T12:01")


def test_rewriting_the_archive_replaces_it_whole(tmp_path: Path) -> None:
    folder = ResultsDir(tmp_path).user(new_token())
    rep, located = make_report(folder)
    archive.write_archive(folder, rep, located)
    first = folder.archive.read_bytes()
    archive.write_archive(folder, rep, located)
    assert folder.archive.read_bytes() == first
