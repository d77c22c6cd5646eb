"""pipeline.process_image/finalize against a real Redis, in cases that need no ML service (or a dead one)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image

from backend import imaging, jobs, ml_client, pipeline, storage
from backend.core.config import settings
from backend.schemas import JobState

TTL = 3600


@pytest.fixture(autouse=True)
def dead_ml_service(monkeypatch: pytest.MonkeyPatch, free_port: Callable[[], int]) -> None:
    """Nothing listens there: a test passes only if it never needed the ML service, or handled its absence."""
    monkeypatch.setattr(settings, "ML_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(settings, "ML_RETRIES", 1)
    monkeypatch.setattr(settings, "ML_RETRY_BACKOFF_SECONDS", 0.0)
    monkeypatch.setattr(ml_client, "_client", None)


def start(r: redis.Redis, results_dir: Path, files: dict[str, bytes]) -> tuple[str, storage.UserDir]:
    job_id, user_hash = storage.new_token(), storage.new_token()
    folder = storage.user_dir(results_dir, user_hash)
    for name, data in files.items():
        path = folder.inputs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    jobs.create_job(r, job_id, user_hash, storage.output_names(files), deadline_s=60, ttl=TTL)
    return job_id, folder


def write_outputs(folder: storage.UserDir, output: str, mask: np.ndarray) -> None:
    imaging.save_png_atomic(imaging.mask_image(mask), folder.mask_path(output))
    imaging.save_png_atomic(imaging.mask_image(mask).convert("RGB"), folder.overlay_path(output))


def test_existing_outputs_are_not_segmented_again(
    r: redis.Redis,
    results_dir: Path,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
) -> None:
    job_id, folder = start(r, results_dir, {"a/x.png": encode(make_sar(20, 30), "PNG")})
    mask = np.zeros((20, 30), np.uint8)
    mask[:5, :6] = 255
    write_outputs(folder, "a/x.png", mask)
    for _ in range(2):  # a redelivery: same answer, counted once
        out = pipeline.process_image(r, job_id, "a/x.png")
        assert out == {"name": "a/x.png", "status": "ok", "error": None}
    job = jobs.get_job(r, job_id)
    assert job is not None and (job.state, job.done, job.failed) == (JobState.PROCESSING, 1, 0)
    result = jobs.results(r, job_id)["a/x.png"]
    assert (result.width, result.height, result.oil_pixels, result.oil_fraction) == (30, 20, 30, 30 / 600)


def test_redeliveries_are_bounded(
    r: redis.Redis,
    results_dir: Path,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
) -> None:
    job_id, _ = start(r, results_dir, {"poison.png": encode(make_sar(20, 30), "PNG")})
    for _ in range(settings.MAX_DELIVERIES):  # three workers died on it
        jobs.count_delivery(r, job_id, "poison.png", ttl=TTL)
    out = pipeline.process_image(r, job_id, "poison.png")
    assert out["status"] == "failed"
    assert "gave up after 3 attempts" in str(out["error"])
    assert jobs.errors(r, job_id) == {"poison.png": out["error"]}


def test_dead_ml_service_gives_an_error_record_not_an_exception(
    r: redis.Redis,
    results_dir: Path,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
) -> None:
    job_id, folder = start(r, results_dir, {"x.tif": encode(make_sar(20, 30), "TIFF16")})
    out = pipeline.process_image(r, job_id, "x.tif")
    assert out["status"] == "failed"
    assert "unreachable" in str(out["error"]) and "gave up after 2 attempts" in str(out["error"])
    assert not folder.masks.exists()


def test_unreadable_image_fails_without_calling_the_ml_service(r: redis.Redis, results_dir: Path) -> None:
    job_id, _ = start(r, results_dir, {"fake.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 40})
    out = pipeline.process_image(r, job_id, "fake.png")
    assert out["status"] == "failed" and "cannot read image" in str(out["error"])


def test_inactive_or_unknown_jobs_are_skipped(r: redis.Redis, results_dir: Path) -> None:
    job_id, folder = start(r, results_dir, {"x.png": b""})
    jobs.transition(r, job_id, JobState.FAILED, [JobState.QUEUED])
    assert pipeline.process_image(r, job_id, "x.png")["status"] == "skipped"
    assert pipeline.process_image(r, storage.new_token(), "x.png")["status"] == "skipped"
    assert jobs.results(r, job_id) == {}
    assert not folder.masks.exists()


def test_finalize_waits_for_missing_results_unless_forced(r: redis.Redis, results_dir: Path) -> None:
    job_id, folder = start(r, results_dir, {"a.png": b"", "b.png": b""})
    write_outputs(folder, "a.png", np.full((4, 4), 255, np.uint8))
    pipeline.process_image(r, job_id, "a.png")
    with pytest.raises(pipeline.ResultsPending):
        pipeline.finalize(r, job_id)
    expires_at = pipeline.finalize(r, job_id, force=True)
    assert expires_at is not None
    job = jobs.get_job(r, job_id)
    assert job is not None and (job.state, job.done, job.failed) == (JobState.COMPLETED, 1, 1)
    assert jobs.errors(r, job_id) == {"b.png": "not processed before the job deadline"}
    assert job.user_hash in jobs.due_for_expiry(r, expires_at)
    with zipfile.ZipFile(folder.archive) as zf:
        assert sorted(zf.namelist()) == ["masks/a.png", "overlays/a.png", "report.csv", "report.json"]
        with Image.open(io.BytesIO(zf.read("masks/a.png"))) as im:
            assert im.size == (4, 4)
    assert pipeline.finalize(r, job_id, force=True) is None  # a late chord callback changes nothing


def test_job_where_every_image_failed_ends_failed_without_archive(r: redis.Redis, results_dir: Path) -> None:
    job_id, folder = start(r, results_dir, {"bad.png": b"junk"})
    pipeline.process_image(r, job_id, "bad.png")
    assert pipeline.finalize(r, job_id) is not None
    job = jobs.get_job(r, job_id)
    assert job is not None and (job.state, job.done, job.failed) == (JobState.FAILED, 0, 1)
    assert job.expires_at is not None  # its inputs are still deleted on time
    assert not folder.archive.exists()
