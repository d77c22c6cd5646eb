"""The chord callback, as a plain function: archive a job once every image has a result, and close it.

Idempotent and safe to race: a lock lets one caller archive, and the job's state moves on by compare-and-set,
so a duplicate callback or the sweeper's re-drive changes nothing once the job is closed.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from backend.core.logging import job_event
from backend.jobs.models import ACTIVE_STATES, ImageResult, Job, JobState
from backend.storage import parts
from backend.storage.archive import Report, write_archive
from backend.storage.area_archive import write_area_archive
from backend.storage.layout import UserDir
from backend.storage.reserve import DiskReservations, is_no_space
from backend.worker.context import WorkerContext
from backend.worker.outputs import failed_result

log = logging.getLogger(__name__)


class ResultsPending(Exception):
    """The chord callback ran while some images have no result yet (a duplicate delivery fired it early)."""


def finalize(ctx: WorkerContext, job_id: str, *, force: bool = False) -> float | None:
    """Write the archive and close the job; returns expires_at when this call closed it, else None.

    Without `force`, raises ResultsPending if images lack a result; with it (the sweeper, past the deadline)
    those images are recorded as failed and the job closes with what it has.
    """
    store = ctx.store
    job = store.get_job(job_id)
    if job is None or not job.active:
        return None
    lock = f"finalize:{job_id}"
    if not store.acquire_lock(lock, ttl=600):
        return None
    try:
        return _finalize_locked(ctx, job, force=force)
    finally:
        store.release_lock(lock)


def _finalize_locked(ctx: WorkerContext, job: Job, *, force: bool) -> float | None:
    store, images = ctx.store, ctx.store.images
    folder = ctx.results.user(job.user_hash)
    outputs = images.inputs(job.job_id)
    results = images.results(job.job_id)
    stored = images.parts(job.job_id)
    missing = sorted(outputs.keys() - results.keys())
    if missing and not force:
        raise ResultsPending(f"{len(missing)} images have no result yet")
    changed = [
        failed_result(name, outputs[name], "not processed before the job deadline") for name in missing
    ]
    ok = [res.output for res in results.values() if res.status == "ok"]
    lost = _lost_outputs(folder, {out: stored.get(out) for out in ok})
    changed += [
        failed_result(name, res.output, "result files disappeared before archiving")
        for name, res in results.items()
        if res.status == "ok" and res.output in lost
    ]
    for result in changed:
        results[result.name] = result
        images.record_result(job.job_id, result, model_version=None, user_hash=job.user_hash)
    if not store.transition(job.job_id, JobState.ARCHIVING, ACTIVE_STATES):
        return None
    ordered = [results[name] for name in sorted(results)]
    done = sum(res.status == "ok" for res in ordered)
    now = time.time()
    if done:
        report = Report(
            job_id=job.job_id,
            model_version=job.model_version,
            created_at=datetime.fromtimestamp(job.created_at, UTC),
            finished_at=datetime.fromtimestamp(now, UTC),
            total=len(ordered),
            done=done,
            failed=len(ordered) - done,
            images=ordered,
        )
        try:
            # An area job's archive adds its scenes and clips its slicks to the bboxes.
            (write_area_archive if job.kind == "area" else write_archive)(folder, report, stored)
        except OSError as exc:
            if not is_no_space(exc):
                raise
            # The disk is full: the job fails now with the reason (its files expire as usual), rather than
            # sitting in `archiving` until a deadline whose re-drive would need the disk just the same.
            ordered = _no_archive(ctx, job, ordered, f"cannot write the archive: {exc.strerror}")
            done = 0
        else:
            ctx.metrics.add_archive_bytes(folder.archive.stat().st_size)
    state = JobState.COMPLETED if done else JobState.FAILED
    expires_at = store.finish(job.job_id, job.user_hash, state, now=now)
    DiskReservations(store.client, ctx.results, factor=0, floor_mb=0).release(job.user_hash)
    if expires_at is not None:
        ctx.metrics.count_job(state)
        job_event(
            "archived" if done else "failed",
            job.job_id,
            done=done,
            failed=len(ordered) - done,
            expires_at=datetime.fromtimestamp(expires_at, UTC).isoformat(),
        )
    return expires_at


def _no_archive(ctx: WorkerContext, job: Job, ordered: list[ImageResult], reason: str) -> list[ImageResult]:
    """Every image fails with `reason` (the archive that would hold the good ones cannot be written)."""
    failed = [failed_result(res.name, res.output, reason) if res.status == "ok" else res for res in ordered]
    ctx.store.images.record_results(job.job_id, failed, model_version=None, user_hash=job.user_hash)
    log.error("job %s: %s", job.job_id, reason)
    return failed


def _lost_outputs(folder: UserDir, located: dict[str, str | None]) -> set[str]:
    """The outputs whose part is unknown, missing or lacks their files (checked once per part)."""
    by_part: dict[str, list[str]] = {}
    lost = {out for out, part in located.items() if part is None}
    for out, part in located.items():
        if part is not None:
            by_part.setdefault(part, []).append(out)
    for part, outs in by_part.items():
        try:
            path = folder.part_path(part)
        except ValueError:
            lost.update(outs)
            continue
        if not parts.complete(path, outs):
            lost.update(outs)
    return lost
