"""The worker's side of georeferenced outputs: what the ML service answers with geo=true (faked here) is
checked, renamed after the upload's paths, stored in the part and archived with the job's slicks.

With the real ML service: tests/e2e/test_geo_e2e.py.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import PurePosixPath

import numpy as np
import pytest
import slick_samples
from PIL import Image
from test_segment import start

from backend.storage import parts
from backend.worker import finalize, segment
from backend.worker.context import WorkerContext
from backend.worker.ml_client import MLServiceError, Segmentation

GEOREFERENCED = ("a/x.tif", "b/x.tif")  # the same base name in two folders


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def answer(filename: str, data: bytes, *, cog_size: tuple[int, int] | None = None) -> Segmentation:
    """What the service answers for one image it was sent as `filename`: slicks named after that name."""
    with Image.open(io.BytesIO(data)) as im:
        size = im.size
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, 4, 2))
    georeferenced = filename.endswith(".tif")
    return Segmentation(
        mask_png=encoded(mask, "PNG"),
        overlay_png=encoded(Image.new("P", size, 1), "PNG"),
        oil_fraction=8 / (size[0] * size[1]),
        oil_pixels=8,
        model_version="test",
        geo=slick_samples.geo(georeferenced, slicks=2 if georeferenced else 1),
        slicks_geojson=slick_samples.encoded(
            filename, [0.5, 0.25] if georeferenced else [8.0], georeferenced=georeferenced
        ),
        mask_tif=encoded(mask.resize(cog_size or size), "TIFF") if georeferenced else None,
    )


def test_slicks_and_cog_masks_are_stored_under_the_upload_paths_and_archived(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = {name: encode(make_sar(20, 30), "TIFF16") for name in GEOREFERENCED}
    files["c.png"] = encode(make_sar(20, 30), "PNG")
    job_id, folder = start(ctx, files)
    sent: list[str] = []

    def segment_batch(images: list[tuple[str, bytes]]) -> list[Segmentation]:
        sent.extend(name for name, _ in images)
        return [answer(name, data) for name, data in images]

    monkeypatch.setattr(ctx.ml, "segment_batch", segment_batch)
    out = segment.process_images(ctx, job_id, list(files))
    assert [o["status"] for o in out] == ["ok"] * 3
    assert sent == ["x.tif", "x.tif", "c.png"]  # base names go to the service
    with zipfile.ZipFile(folder.part_path(parts.part_id(list(files)))) as part:
        names = part.namelist()
        stored = {
            name: json.loads(part.read(parts.slicks_name(name.replace(".tif", ".png"))))
            for name in GEOREFERENCED
        }
    assert {"masks/a/x.tif", "masks/b/x.tif", "slicks/c.geojson"} <= set(names) and "masks/c.tif" not in names
    for name, collection in stored.items():  # renamed after the path in the upload: ids stay unique
        assert collection["image"] == name
        assert [f["id"] for f in collection["features"]] == [f"{name}#1", f"{name}#2"]
        assert {f["properties"]["image"] for f in collection["features"]} == {name}
    results = ctx.store.images.results(job_id)
    geo = results["a/x.tif"].geo
    assert geo is not None and geo.georeferenced and geo.crs == "EPSG:32639" and geo.slicks == 2
    plain = results["c.png"].geo
    assert plain is not None and not plain.georeferenced and plain.reason == "not a GeoTIFF"

    assert finalize.finalize(ctx, job_id) is not None
    with zipfile.ZipFile(folder.archive) as zf:
        merged = json.loads(zf.read("slicks.geojson"))
        report = json.loads(zf.read("report.json"))
        assert zf.read("masks/b/x.tif") == answer("x.tif", files["b/x.tif"]).mask_tif
        rows = zf.read("slicks.csv").decode().splitlines()
    assert [f["id"] for f in merged["features"]] == ["a/x.tif#1", "a/x.tif#2", "b/x.tif#1", "b/x.tif#2"]
    assert merged["not_georeferenced"] == ["c.png"]
    assert len(rows) == 1 + 5 and rows[-1].startswith("c.png,1,false,")
    assert [image["geo"]["georeferenced"] for image in report["images"]] == [True, True, False]


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ({"mask_tif": b"not a tiff"}, "unreadable COG mask: not a TIFF file"),
        ({"slicks_geojson": b"[1, 2"}, "unreadable slicks"),
        ({"slicks_geojson": b'{"type": "Feature"}'}, "unreadable slicks"),
    ],
)
def test_an_unreadable_cog_or_slicks_fails_that_image_alone(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
    monkeypatch: pytest.MonkeyPatch,
    broken: dict[str, bytes],
    reason: str,
) -> None:
    files = {name: encode(make_sar(20, 30), "TIFF16") for name in ("bad.tif", "good.tif")}
    job_id, _ = start(ctx, files)

    def segment_batch(images: list[tuple[str, bytes]]) -> list[Segmentation]:
        outcomes = [answer(name, data) for name, data in images]
        return [outcomes[0].model_copy(update=broken), *outcomes[1:]]

    monkeypatch.setattr(ctx.ml, "segment_batch", segment_batch)
    out = segment.process_images(ctx, job_id, list(files))
    assert out[0]["status"] == "failed" and reason in str(out[0]["error"])
    assert out[1]["status"] == "ok"


def test_a_cog_mask_of_another_size_fails_the_image(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id, _ = start(ctx, {"x.tif": encode(make_sar(20, 30), "TIFF16")})

    def segment_batch(images: list[tuple[str, bytes]]) -> list[Segmentation]:
        return [answer(name, data, cog_size=(10, 10)) for name, data in images]

    monkeypatch.setattr(ctx.ml, "segment_batch", segment_batch)
    out = segment.process_image(ctx, job_id, "x.tif")
    assert out["status"] == "failed" and "10x10 COG mask for a 30x20 image" in str(out["error"])


def test_one_image_and_a_batch_refused_as_a_whole_go_through_the_batch_route(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only POST /segment/batch answers slicks: a single image and the one-by-one fallback use it too."""
    files = {f"{i}.tif": encode(make_sar(20, 30), "TIFF16") for i in range(3)}
    job_id, folder = start(ctx, files)
    requests: list[list[str]] = []

    def segment_batch(images: list[tuple[str, bytes]]) -> list[Segmentation]:
        requests.append([PurePosixPath(name).name for name, _ in images])
        if len(images) > 1:
            raise MLServiceError("ML service rejected the image: too many files (test)", status_code=413)
        return [answer(name, data) for name, data in images]

    monkeypatch.setattr(ctx.ml, "segment_batch", segment_batch)
    out = segment.process_images(ctx, job_id, list(files))
    assert [o["status"] for o in out] == ["ok"] * 3
    assert requests == [["0.tif", "1.tif", "2.tif"], ["0.tif"], ["1.tif"], ["2.tif"]]
    assert parts.complete(folder.part_path(parts.part_id(list(files))), [f"{i}.png" for i in range(3)])
