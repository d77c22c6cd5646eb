"""segment.process_images and finalize on a real Redis, in cases that need no ML service (or a dead one)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.core.config import settings
from backend.jobs.models import ImageResult, JobState
from backend.storage import parts
from backend.storage.layout import UserDir, new_token, output_names
from backend.upload.entries import ZipEntry
from backend.worker import finalize, inputs, segment
from backend.worker.context import WorkerContext
from backend.worker.ml_client import MLServiceError, Segmentation

JOB_FILES = (
    "report.csv",
    "report.json",
    "slicks.csv",
    "slicks.geojson",
)  # sorted, after masks/ and overlays/


def start(ctx: WorkerContext, files: dict[str, bytes]) -> tuple[str, UserDir]:
    """A queued job over `files`, its folder as an upload leaves it: only upload.zip, entries recorded."""
    job_id, user_hash = new_token(), new_token()
    folder = ctx.results.user(user_hash)
    folder.root.mkdir(parents=True)
    with zipfile.ZipFile(folder.upload, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("notes.txt", b"an entry that is not an image comes first")
        for name, data in files.items():
            archive.writestr(name, data)
        entries = {name: ZipEntry.from_info(archive.getinfo(name)).to_record() for name in files}
    ctx.store.create_job(job_id, user_hash, output_names(files), entries)
    return job_id, folder


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def record_done(ctx: WorkerContext, job_id: str, folder: UserDir, name: str, mask: np.ndarray) -> str:
    """What a delivery that finished an image leaves: its part on disk and its ok record; the part id."""
    output = output_names([name])[name]
    part = parts.part_id([name])
    overlay = png(Image.fromarray(mask).convert("P"))
    parts.write_part(folder.part_path(part), [parts.Outputs(output, png(Image.fromarray(mask)), overlay)])
    height, width = mask.shape
    oil = int(np.count_nonzero(mask))
    result = ImageResult(
        name=name,
        output=output,
        status="ok",
        width=width,
        height=height,
        oil_pixels=oil,
        oil_fraction=oil / mask.size,
    )
    ctx.store.images.record_results(
        job_id, [result], model_version="t", user_hash=folder.root.name, parts={output: part}
    )
    return part


def test_recorded_outputs_are_not_segmented_again(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
) -> None:
    job_id, folder = start(ctx, {"a/x.png": encode(make_sar(20, 30), "PNG")})
    mask = np.zeros((20, 30), np.uint8)
    mask[:5, :6] = 255
    record_done(ctx, job_id, folder, "a/x.png", mask)
    for _ in range(2):  # a redelivery: same answer, counted once
        out = segment.process_image(ctx, job_id, "a/x.png")
        assert out == {"name": "a/x.png", "status": "ok", "error": None}
    job = ctx.store.get_job(job_id)
    assert job is not None and (job.state, job.done, job.failed) == (JobState.PROCESSING, 1, 0)
    result = ctx.store.images.results(job_id)["a/x.png"]
    assert (result.width, result.height, result.oil_pixels, result.oil_fraction) == (30, 20, 30, 30 / 600)
    assert ctx.store.images.deliveries(job_id, ["a/x.png"]) == {
        "a/x.png": 0
    }  # never sent to the (dead) service


def test_a_recorded_image_whose_part_is_gone_is_segmented_again(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
) -> None:
    job_id, folder = start(ctx, {"x.png": encode(make_sar(20, 30), "PNG")})
    part = record_done(ctx, job_id, folder, "x.png", np.zeros((20, 30), np.uint8))
    folder.part_path(part).unlink()
    out = segment.process_image(ctx, job_id, "x.png")
    assert out["status"] == "failed" and "unreachable" in str(out["error"])  # tried again: service is dead


def test_redeliveries_are_bounded(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
) -> None:
    job_id, _ = start(ctx, {"poison.png": encode(make_sar(20, 30), "PNG")})
    for _ in range(settings.MAX_DELIVERIES):  # three workers died on it
        ctx.store.images.count_delivery(job_id, "poison.png")
    out = segment.process_image(ctx, job_id, "poison.png")
    assert out["status"] == "failed"
    assert "gave up after 3 attempts" in str(out["error"])
    assert ctx.store.images.errors(job_id) == {"poison.png": out["error"]}


def test_dead_ml_service_gives_an_error_record_not_an_exception(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
) -> None:
    job_id, folder = start(ctx, {"x.tif": encode(make_sar(20, 30), "TIFF16")})
    out = segment.process_image(ctx, job_id, "x.tif")
    assert out["status"] == "failed"
    assert "unreachable" in str(out["error"]) and "gave up after 2 attempts" in str(out["error"])
    assert not folder.parts.exists()


def test_unreadable_image_fails_without_calling_the_ml_service(ctx: WorkerContext) -> None:
    job_id, _ = start(ctx, {"fake.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 40})
    out = segment.process_image(ctx, job_id, "fake.png")
    assert out["status"] == "failed" and "cannot read image" in str(out["error"])


def test_inactive_or_unknown_jobs_are_skipped(ctx: WorkerContext) -> None:
    job_id, folder = start(ctx, {"x.png": b""})
    ctx.store.transition(job_id, JobState.FAILED, [JobState.QUEUED])
    assert segment.process_image(ctx, job_id, "x.png")["status"] == "skipped"
    assert segment.process_image(ctx, new_token(), "x.png")["status"] == "skipped"
    assert ctx.store.images.results(job_id) == {}
    assert not folder.parts.exists()


def test_finalize_waits_for_missing_results_unless_forced(ctx: WorkerContext) -> None:
    job_id, folder = start(ctx, {"a.png": b"", "b.png": b""})
    record_done(ctx, job_id, folder, "a.png", np.full((4, 4), 255, np.uint8))
    segment.process_image(ctx, job_id, "a.png")
    with pytest.raises(finalize.ResultsPending):
        finalize.finalize(ctx, job_id)
    expires_at = finalize.finalize(ctx, job_id, force=True)
    assert expires_at is not None
    job = ctx.store.get_job(job_id)
    assert job is not None and (job.state, job.done, job.failed) == (JobState.COMPLETED, 1, 1)
    assert ctx.store.images.errors(job_id) == {"b.png": "not processed before the job deadline"}
    assert job.user_hash in ctx.store.due_for_expiry(expires_at)
    with zipfile.ZipFile(folder.archive) as zf:
        assert sorted(zf.namelist()) == ["masks/a.png", "overlays/a.png", *JOB_FILES]
        with Image.open(io.BytesIO(zf.read("masks/a.png"))) as im:
            assert im.size == (4, 4)
    assert finalize.finalize(ctx, job_id, force=True) is None  # a late chord callback changes nothing


def test_job_where_every_image_failed_ends_failed_without_archive(ctx: WorkerContext) -> None:
    job_id, folder = start(ctx, {"bad.png": b"junk"})
    segment.process_image(ctx, job_id, "bad.png")
    assert finalize.finalize(ctx, job_id) is not None
    job = ctx.store.get_job(job_id)
    assert job is not None and (job.state, job.done, job.failed) == (JobState.FAILED, 0, 1)
    assert job.expires_at is not None  # its upload is still deleted on time
    assert not folder.archive.exists()


def test_a_batch_records_every_image_in_one_go(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
) -> None:
    files = {"done.png": encode(make_sar(20, 30), "PNG"), "new.png": encode(make_sar(20, 30), "PNG")}
    files["junk.png"] = b"junk"
    job_id, folder = start(ctx, files)
    record_done(ctx, job_id, folder, "done.png", np.zeros((20, 30), np.uint8))
    out = segment.process_images(ctx, job_id, ["done.png", "new.png", "junk.png", "stranger.png"])
    assert [(o["name"], o["status"]) for o in out] == [
        ("done.png", "ok"),
        ("new.png", "failed"),
        ("junk.png", "failed"),
        ("stranger.png", "skipped"),
    ]
    assert "unreachable" in str(out[1]["error"]) and "cannot read image" in str(out[2]["error"])
    job = ctx.store.get_job(job_id)
    assert job is not None and (job.done, job.failed) == (1, 2)
    # the finished image was not counted as started again; the others once each
    assert ctx.store.images.deliveries(job_id, ["done.png", "new.png", "junk.png"]) == {
        "done.png": 0,
        "new.png": 1,
        "junk.png": 1,
    }


def test_a_redelivered_batch_goes_one_by_one_and_gives_up_only_on_the_poison(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = ["a.png", "poison.png", "c.png"]
    job_id, _ = start(ctx, {name: encode(make_sar(20, 30), "PNG") for name in names})
    ctx.store.images.count_deliveries(job_id, names)  # first delivery: the worker died in the batch request
    for _ in range(settings.MAX_DELIVERIES - 1):  # then died on the poison alone each time
        ctx.store.images.count_delivery(job_id, "poison.png")
    requests: list[list[str]] = []

    def segment_batch(images: list[tuple[str, bytes]]) -> list[object]:
        requests.append([name for name, _ in images])
        raise MLServiceError("ML service unreachable (test)")

    monkeypatch.setattr(ctx.ml, "segment_batch", segment_batch)
    out = segment.process_images(ctx, job_id, names)  # one image a request: no batch-mate goes with it
    assert requests == [["a.png"], ["c.png"]]
    assert "gave up after 3 attempts" in str(out[1]["error"])
    assert [o["error"] for o in (out[0], out[2])] == ["ML service unreachable (test)"] * 2


def test_requests_are_split_by_pixels_so_none_outlasts_the_timeout() -> None:
    def image(width: int, height: int) -> tuple[bytes, tuple[int, int]]:
        return b"", (width, height)

    images = {"a": image(100, 100), "b": image(100, 100), "huge": image(1000, 1000), "c": image(50, 50)}
    groups = inputs.split_by_pixels(images, budget=25_000)
    assert [list(group) for group in groups] == [["a", "b"], ["huge"], ["c"]]
    assert inputs.split_by_pixels({}, budget=1) == []


def test_a_member_of_large_images_is_sent_in_several_requests(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"{i}.png" for i in range(5)]
    job_id, _ = start(ctx, {name: encode(make_sar(20, 30), "PNG") for name in names})
    monkeypatch.setattr(settings, "REQUEST_MAX_PIXELS", 2 * 20 * 30)
    requests: list[list[str]] = []

    def segment_batch(images: list[tuple[str, bytes]]) -> list[object]:
        requests.append([name for name, _ in images])
        return [MLServiceError("down (test)")] * len(images)

    monkeypatch.setattr(ctx.ml, "segment_batch", segment_batch)
    out = segment.process_images(ctx, job_id, names)
    assert requests == [["0.png", "1.png"], ["2.png", "3.png"], ["4.png"]]
    assert {o["error"] for o in out} == {"down (test)"}


def test_a_request_stores_its_masks_and_overlays_as_one_part(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = ["a/x.png", "b/x.png", "c.png"]
    job_id, folder = start(ctx, {name: encode(make_sar(20, 30), "PNG") for name in names})
    mask = np.zeros((20, 30), np.uint8)
    mask[2:6, :] = 255  # 120 oil pixels

    def segment_batch(images: list[tuple[str, bytes]]) -> list[object]:
        overlay = png(Image.fromarray(mask).convert("P"))
        result = Segmentation(
            mask_png=png(Image.fromarray(mask)), overlay_png=overlay, oil_fraction=0.2, model_version="v7"
        )
        return [result] * len(images)

    monkeypatch.setattr(ctx.ml, "segment_batch", segment_batch)
    out = segment.process_images(ctx, job_id, names)
    assert [o["status"] for o in out] == ["ok"] * 3
    assert [p.name for p in folder.parts.iterdir()] == [f"{parts.part_id(names)}.zip"]  # one file, no temp
    stored = ctx.store.images.parts(job_id)
    assert stored == {
        "a/x.png": parts.part_id(names),
        "b/x.png": parts.part_id(names),
        "c.png": parts.part_id(names),
    }
    assert {res.oil_pixels for res in ctx.store.images.results(job_id).values()} == {120}
    assert finalize.finalize(ctx, job_id) is not None
    with zipfile.ZipFile(folder.archive) as zf:
        assert sorted(zf.namelist()) == [
            "masks/a/x.png",
            "masks/b/x.png",
            "masks/c.png",
            "overlays/a/x.png",
            "overlays/b/x.png",
            "overlays/c.png",
            *JOB_FILES,
        ]
        with Image.open(io.BytesIO(zf.read("masks/b/x.png"))) as im:
            assert np.array_equal(np.asarray(im), mask)
        assert all(
            i.compress_type == zipfile.ZIP_STORED for i in zf.infolist() if i.filename.endswith(".png")
        )


def test_finalize_fails_the_images_whose_part_disappeared(ctx: WorkerContext) -> None:
    job_id, folder = start(ctx, {"a.png": b"", "b.png": b""})
    record_done(ctx, job_id, folder, "a.png", np.zeros((4, 4), np.uint8))
    folder.part_path(record_done(ctx, job_id, folder, "b.png", np.zeros((4, 4), np.uint8))).unlink()
    assert finalize.finalize(ctx, job_id) is not None
    assert ctx.store.images.errors(job_id) == {"b.png": "result files disappeared before archiving"}
    with zipfile.ZipFile(folder.archive) as zf:
        assert sorted(zf.namelist()) == ["masks/a.png", "overlays/a.png", *JOB_FILES]


def fake_segmentation(data: bytes) -> Segmentation:
    """What the ML service would answer for this image: an all-oil mask and a palette overlay of its size."""
    with Image.open(io.BytesIO(data)) as im:
        size = im.size
    mask, overlay = io.BytesIO(), io.BytesIO()
    Image.new("L", size, 255).save(mask, format="PNG")
    Image.new("P", size, 1).save(overlay, format="PNG")
    return Segmentation(
        mask_png=mask.getvalue(), overlay_png=overlay.getvalue(), oil_fraction=1.0, model_version="test"
    )


def test_images_are_segmented_from_upload_zip_with_nothing_extracted(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = {"a/x.png": encode(make_sar(20, 30), "PNG"), "b/y.tif": encode(make_sar(24, 16), "TIFF16")}
    job_id, folder = start(ctx, files)
    sent: dict[str, bytes] = {}
    opened: list[object] = []
    real_open = Path.open

    def spy_open(path: Path, *args: object, **kwargs: object) -> object:
        if path == folder.upload:
            opened.append(path)
        return real_open(path, *args, **kwargs)

    def segment_batch(images: list[tuple[str, bytes]]) -> list[Segmentation]:
        sent.update(images)
        return [fake_segmentation(data) for _, data in images]

    monkeypatch.setattr(Path, "open", spy_open)
    monkeypatch.setattr(ctx.ml, "segment_batch", segment_batch)
    out = segment.process_images(ctx, job_id, list(files))
    assert [(o["name"], o["status"]) for o in out] == [("a/x.png", "ok"), ("b/y.tif", "ok")]
    assert sent == {"x.png": files["a/x.png"], "y.tif": files["b/y.tif"]}  # the bytes as uploaded
    assert len(opened) == 1  # upload.zip is opened once per batch, not once per image
    assert sorted(p.name for p in folder.root.iterdir()) == ["parts", "upload.zip"]
    assert parts.complete(folder.part_path(parts.part_id(files)), ["a/x.png", "b/y.png"])
    result = ctx.store.images.results(job_id)["b/y.tif"]
    assert (result.width, result.height, result.oil_pixels) == (16, 24, 16 * 24)
