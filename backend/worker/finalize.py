"""The chord callback, as a plain function: archive a job once every image has a result, and close it.

Idempotent and safe to race: a lock lets one caller archive, and the job's state moves on by compare-and-set,
so a duplicate callback or the sweeper's re-drive changes nothing once the job is closed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from backend import job_images, jobs, metrics, parts, pipeline
from backend.core.config import settings
from backend.core.logging import job_event
from backend.report import write_archive
from backend.schemas import JobState, Report
from backend.storage import UserDir, user_dir


class ResultsPending(Exception):
    """The chord callback ran while some images have no result yet (a duplicate delivery fired it early)."""


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
    outputs = job_images.inputs(r, job.job_id)
    results = job_images.results(r, job.job_id)
    stored = job_images.parts(r, job.job_id)
    missing = sorted(outputs.keys() - results.keys())
    if missing and not force:
        raise ResultsPending(f"{len(missing)} images have no result yet")
    changed = [
        pipeline.failed_result(name, outputs[name], "not processed before the job deadline")
        for name in missing
    ]
    ok = [res.output for res in results.values() if res.status == "ok"]
    lost = _lost_outputs(folder, {out: stored.get(out) for out in ok})
    changed += [
        pipeline.failed_result(name, res.output, "result files disappeared before archiving")
        for name, res in results.items()
        if res.status == "ok" and res.output in lost
    ]
    for result in changed:
        results[result.name] = result
        job_images.record_result(
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
        write_archive(folder, report, stored)
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
