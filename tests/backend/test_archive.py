from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import slick_samples
from PIL import Image

from backend.jobs.models import ImageResult
from backend.storage import archive, parts
from backend.storage.archive import Report
from backend.storage.layout import ResultsDir, UserDir, new_token


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


COG = b"II*\x00 a COG mask (test)"


def make_report(folder: UserDir) -> tuple[Report, dict[str, str]]:
    """A report of two ok images (stored in two parts) and a failed one; output -> part of the ok ones.

    a/x.jpg is georeferenced (a COG mask, two slicks in lon/lat), b/x.jpg not (one slick in pixels).
    """
    images = [
        ImageResult(
            name="a/x.jpg",
            output="a/x.png",
            status="ok",
            width=4,
            height=2,
            oil_pixels=2,
            oil_fraction=0.25,
            geo=slick_samples.geo(True, slicks=2, oil_km2=0.75),
        ),
        ImageResult(
            name="b/x.jpg",
            output="b/x.png",
            status="ok",
            width=4,
            height=2,
            oil_pixels=0,
            oil_fraction=0.0,
            geo=slick_samples.geo(False),
        ),
        ImageResult(
            name="bad.png", output="bad.png", status="failed", error="ML service rejected the image: 400"
        ),
    ]
    located = {}
    for image, areas, cog in ((images[0], [0.5, 0.25], COG), (images[1], [40.0], None)):
        mask = np.zeros((2, 4), np.uint8)
        mask[0, : (image.oil_pixels or 0)] = 255
        mask_png, overlay_png = png(Image.fromarray(mask)), png(Image.fromarray(mask).convert("P"))
        part = parts.part_id([image.name])
        geojson = slick_samples.encoded(image.name, areas, georeferenced=cog is not None)
        outputs = parts.Outputs(image.output, mask_png, overlay_png, slicks_geojson=geojson, mask_tif=cog)
        parts.write_part(folder.part_path(part), [outputs])
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
            "masks/a/x.tif",
            "masks/b/x.png",
            "overlays/a/x.png",
            "overlays/b/x.png",
            "slicks/a/x.geojson",
            "slicks/b/x.geojson",
            "slicks.geojson",
            "slicks.csv",
            "report.json",
            "report.csv",
        }
        for info in zf.infolist():
            if info.filename.endswith((".png", ".tif")):
                assert info.compress_type == zipfile.ZIP_STORED
        assert zf.read("masks/a/x.tif") == COG
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


def test_archive_holds_the_jobs_slicks_and_the_reports_say_where_each_image_lies(tmp_path: Path) -> None:
    folder = ResultsDir(tmp_path).user(new_token())
    rep, located = make_report(folder)
    with zipfile.ZipFile(archive.write_archive(folder, rep, located)) as zf:
        merged = json.loads(zf.read("slicks.geojson"))
        per_image = json.loads(zf.read("slicks/b/x.geojson"))
        table = list(csv.DictReader(io.StringIO(zf.read("slicks.csv").decode())))
        data = json.loads(zf.read("report.json"))
        rows = list(csv.DictReader(io.StringIO(zf.read("report.csv").decode())))
    # RFC 7946: only the lon/lat slicks; the image in pixel coordinates is named instead
    assert merged["type"] == "FeatureCollection" and merged["not_georeferenced"] == ["b/x.jpg"]
    assert [f["id"] for f in merged["features"]] == ["a/x.jpg#1", "a/x.jpg#2"]
    assert per_image["georeferenced"] is False and per_image["features"][0]["id"] == "b/x.jpg#1"
    # the CSV has every slick, pixel ones included
    assert [(row["image"], row["id"], row["georeferenced"]) for row in table] == [
        ("a/x.jpg", "1", "true"),
        ("a/x.jpg", "2", "true"),
        ("b/x.jpg", "1", "false"),
    ]
    assert table[0]["area_km2"] == "0.5" and table[2]["area_km2"] == "" and table[2]["area_px"] == "40"
    geo = data["images"][0]["geo"]
    assert geo == {
        "georeferenced": True,
        "reason": None,
        "crs": "EPSG:32639",
        "georeferencing": "affine",
        "bounds": [51.5, 27.0, 51.53, 27.03],
        "pixel_size_m": [10.0, 10.0],
        "acquired": "2024-05-02T02:41:07.123000Z",
        "slicks": 2,
        "slicks_on_land": 1,
        "oil_km2": 0.75,
    }
    assert data["images"][1]["geo"]["reason"] == "not a GeoTIFF" and data["images"][2]["geo"] is None
    georef = {k: rows[0][k] for k in archive.CSV_COLUMNS[10:24]}
    assert georef == {
        "georeferenced": "true",
        "georef_reason": "",
        "crs": "EPSG:32639",
        "georeferencing": "affine",
        "west": "51.5",
        "south": "27.0",
        "east": "51.53",
        "north": "27.03",
        "pixel_size_x_m": "10.0",
        "pixel_size_y_m": "10.0",
        "acquired": "2024-05-02T02:41:07.123000Z",
        "slicks": "2",
        "slicks_on_land": "1",
        "oil_km2": "0.75",
    }
    assert (rows[1]["georeferenced"], rows[1]["georef_reason"], rows[1]["crs"]) == (
        "false",
        "not a GeoTIFF",
        "",
    )
    assert (rows[2]["georeferenced"], rows[2]["slicks"]) == ("", "")  # failed: nothing known


def test_an_archive_of_parts_without_slicks_still_has_the_job_files(tmp_path: Path) -> None:
    """Parts written before slicks existed (a job that ran across an upgrade): PNGs only, empty slicks."""
    folder = ResultsDir(tmp_path).user(new_token())
    mask = png(Image.new("L", (4, 2)))
    part = parts.part_id(["old.png"])
    parts.write_part(folder.part_path(part), [parts.Outputs("old.png", mask, png(Image.new("P", (4, 2))))])
    image = ImageResult(name="old.png", output="old.png", status="ok", width=4, height=2, oil_pixels=0)
    rep, _ = make_report(ResultsDir(tmp_path).user(new_token()))
    rep = rep.model_copy(update={"images": [image], "total": 1, "done": 1, "failed": 0})
    with zipfile.ZipFile(archive.write_archive(folder, rep, {"old.png": part})) as zf:
        assert sorted(zf.namelist()) == [
            "masks/old.png",
            "overlays/old.png",
            "report.csv",
            "report.json",
            "slicks.csv",
            "slicks.geojson",
        ]
        assert json.loads(zf.read("slicks.geojson")) == {"type": "FeatureCollection", "features": []}
        assert zf.read("slicks.csv").decode().count("\n") == 1  # the header alone
