"""What the Celery tasks do, as plain functions of (redis, ids): segment one image, finalize one job.

Both are idempotent, because with acks_late a message can be delivered again after a worker dies:
an image whose mask and overlay exist is not segmented again, and the done/failed sets count each name once.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import PurePosixPath

import numpy as np
from PIL import Image

from backend import imaging, jobs, metrics, ml_client
from backend.core.config import settings
from backend.core.logging import job_event
from backend.report import write_archive
from backend.schemas import ImageResult, JobState, Report
from backend.storage import UserDir, user_dir

log = logging.getLogger(__name__)


class ResultsPending(Exception):
    """The chord callback ran while some images have no result yet (a duplicate delivery fired it early)."""


def process_image(r: jobs.Redis, job_id: str, name: str) -> dict[str, object]:
    """Segment one image of a job and record the outcome; never raises for a bad image or a dead ML service.

    Returns a small dict (chord results travel in one message): name, status, error.
    """
    job = jobs.get_job(r, job_id)
    if job is None or not job.active:
        return {"name": name, "status": "skipped", "error": "job is no longer active"}
    if jobs.mark_started(r, job_id):
        job_event("started", job_id, images=job.total)
    output = jobs.output_name(r, job_id, name)
    if output is None:
        return {"name": name, "status": "skipped", "error": "not an image of this job"}
    folder = user_dir(settings.RESULTS_DIR, job.user_hash)
    version = None
    try:
        result = _existing_result(folder, name, output)
        if result is None:
            deliveries = jobs.count_delivery(r, job_id, name, ttl=settings.JOB_RECORD_TTL_SECONDS)
            if deliveries > settings.MAX_DELIVERIES:
                result = _failed(
                    name,
                    output,
                    f"gave up after {settings.MAX_DELIVERIES} attempts: "
                    "the worker died while processing this image",
                )
            else:
                started = time.perf_counter()
                result, version = _segment(folder, name, output)
                if result.status == "ok":
                    metrics.observe_segmentation(r, time.perf_counter() - started)
    except Exception as exc:  # the chord must complete whatever happens to one image
        log.exception("job %s image %s: unexpected error", job_id, name)
        result = _failed(name, output, f"internal error: {type(exc).__name__}: {exc}")
    jobs.record_result(
        r,
        job_id,
        result,
        model_version=version,
        user_hash=job.user_hash,
        ttl=settings.JOB_RECORD_TTL_SECONDS,
    )
    metrics.count_image(r, result.status)
    if result.status == "ok":
        job_event("image_done", job_id, image=name, oil_fraction=round(result.oil_fraction or 0.0, 6))
    else:
        job_event("image_failed", job_id, image=name, error=result.error)
    return {"name": name, "status": result.status, "error": result.error}


def _failed(name: str, output: str, error: str) -> ImageResult:
    return ImageResult(name=name, output=output, status="failed", error=error)


def _ok(name: str, output: str, mask_shape: tuple[int, ...], oil: int) -> ImageResult:
    height, width = mask_shape[:2]
    return ImageResult(
        name=name,
        output=output,
        status="ok",
        width=width,
        height=height,
        oil_pixels=oil,
        oil_fraction=oil / (width * height),
    )


def _existing_result(folder: UserDir, name: str, output: str) -> ImageResult | None:
    """The result of an earlier delivery that got as far as writing both files (mask last), else None."""
    mask_path, overlay_path = folder.mask_path(output), folder.overlay_path(output)
    if not (mask_path.is_file() and overlay_path.is_file()):
        return None
    with Image.open(mask_path) as im:
        mask = np.asarray(im.convert("L"))
    return _ok(name, output, mask.shape, imaging.oil_pixels(mask))


def _segment(folder: UserDir, name: str, output: str) -> tuple[ImageResult, str | None]:
    source = folder.input_path(name)
    try:
        with Image.open(source) as im:
            size = im.size
        if size[0] * size[1] > settings.MAX_IMAGE_PIXELS:
            return _failed(
                name,
                output,
                f"image has {size[0]}x{size[1]} pixels, over the limit of {settings.MAX_IMAGE_PIXELS}",
            ), None
        segmentation = ml_client.segment(source.read_bytes(), PurePosixPath(name).name)
        mask, mask_png = imaging.canonical_mask(segmentation.mask_png, size)
        imaging.check_overlay(segmentation.overlay_png, size)
    except ml_client.MLServiceError as exc:
        return _failed(name, output, exc.detail), None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return _failed(name, output, f"cannot read image: {exc}"), None
    imaging.write_atomic(segmentation.overlay_png, folder.overlay_path(output))
    imaging.write_atomic(mask_png, folder.mask_path(output))  # last: marks the image done
    return _ok(name, output, mask.shape, imaging.oil_pixels(mask)), segmentation.model_version


def finalize(r: jobs.Redis, job_id: str, *, force: bool = False) -> float | None:
    """Write the archive and close the job; returns expires_at when this call closed it, else None.

    Without `force`, raises ResultsPending if images lack a result; with it (the sweeper, past the deadline)
    those images are recorded as failed and the job closes with what it has.
    """
    job = jobs.get_job(r, job_id)
    if job is None or not job.active:
        return None
    lock = f"finalize:{job_id}"
    if not jobs.acquire_lock(r, lock, ttl=600):
        return None
    try:
        return _finalize_locked(r, job, force=force)
    finally:
        jobs.release_lock(r, lock)


def _finalize_locked(r: jobs.Redis, job: jobs.Job, *, force: bool) -> float | None:
    folder = user_dir(settings.RESULTS_DIR, job.user_hash)
    outputs = jobs.inputs(r, job.job_id)
    results = jobs.results(r, job.job_id)
    missing = sorted(outputs.keys() - results.keys())
    if missing and not force:
        raise ResultsPending(f"{len(missing)} images have no result yet")
    changed = [_failed(name, outputs[name], "not processed before the job deadline") for name in missing]
    changed += [
        _failed(name, res.output, "mask file disappeared before archiving")
        for name, res in results.items()
        if res.status == "ok" and not folder.mask_path(res.output).is_file()
    ]
    for result in changed:
        results[result.name] = result
        jobs.record_result(
            r,
            job.job_id,
            result,
            model_version=None,
            user_hash=job.user_hash,
            ttl=settings.JOB_RECORD_TTL_SECONDS,
        )
    if not jobs.transition(
        r, job.job_id, JobState.ARCHIVING, [JobState.QUEUED, JobState.PROCESSING, JobState.ARCHIVING]
    ):
        return None
    images = [results[name] for name in sorted(results)]
    done = sum(res.status == "ok" for res in images)
    now = time.time()
    if done:
        report = Report(
            job_id=job.job_id,
            model_version=job.model_version,
            created_at=datetime.fromtimestamp(job.created_at, UTC),
            finished_at=datetime.fromtimestamp(now, UTC),
            total=len(images),
            done=done,
            failed=len(images) - done,
            images=images,
        )
        write_archive(folder, report)
        metrics.add_archive_bytes(r, folder.archive.stat().st_size)
    state = JobState.COMPLETED if done else JobState.FAILED
    expires_at = jobs.finish(
        r,
        job.job_id,
        job.user_hash,
        state,
        now=now,
        archive_ttl=settings.ARCHIVE_TTL_SECONDS,
        record_ttl=settings.JOB_RECORD_TTL_SECONDS,
    )
    if expires_at is not None:
        metrics.count_job(r, state)
        job_event(
            "archived" if done else "failed",
            job.job_id,
            done=done,
            failed=len(images) - done,
            expires_at=datetime.fromtimestamp(expires_at, UTC).isoformat(),
        )
    return expires_at
