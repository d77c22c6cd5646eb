"""Celery tasks: thin wrappers around backend.pipeline and backend.cleanup, arguments are ids only."""

from __future__ import annotations

import functools
import time

from celery import Task, chord

from backend import cleanup, jobs, pipeline
from backend.celery_app import celery_app
from backend.core.config import settings

FINALIZE_RETRY_SECONDS = 10


@functools.cache
def _redis() -> jobs.Redis:
    """One client per worker process (redis-py resets its pool after a fork); it rides out a Redis restart."""
    return jobs.connect(settings.redis_url, retry_seconds=settings.REDIS_RETRY_SECONDS)


@celery_app.task(name="backend.tasks.segment_image")
def segment_image(job_id: str, name: str) -> dict[str, object]:
    """Chord member: segment one image; returns an error record instead of raising, so the chord completes."""
    return pipeline.process_image(_redis(), job_id, name)


@celery_app.task(name="backend.tasks.finalize_job", bind=True, max_retries=30, ignore_result=True)
def finalize_job(
    self: Task, _results: list[dict[str, object]] | None, job_id: str, force: bool = False
) -> None:
    """Chord callback (and the sweeper's re-drive): archive the job and start its expiry timer.

    The chord's own results are not used: the per-image records in Redis are complete and survive redelivery.
    """
    try:
        expires_at = pipeline.finalize(_redis(), job_id, force=force)
    except pipeline.ResultsPending as exc:
        raise self.retry(exc=exc, countdown=FINALIZE_RETRY_SECONDS) from exc
    if expires_at is not None:
        job = jobs.get_job(_redis(), job_id)
        if job is not None:
            delete_results.apply_async((job.user_hash,), countdown=max(0.0, expires_at - time.time()))


@celery_app.task(name="backend.tasks.delete_results", ignore_result=True)
def delete_results(user_hash: str) -> bool:
    """Expiry timer: delete the user's folder once due (idempotent; the sweeper does it if this is lost)."""
    return cleanup.expire_user(_redis(), user_hash, time.time())


@celery_app.task(name="backend.tasks.sweep", ignore_result=True)
def sweep() -> dict[str, list[str]]:
    """Periodic backstop: expire what is due, re-drive jobs past their deadline, remove orphan folders."""
    result = cleanup.sweep(_redis())
    for job_id in result.overdue_jobs:
        finalize_job.delay(None, job_id, force=True)
    return result.model_dump()


def launch_job(job_id: str, names: list[str]) -> None:
    """Send the chord: one segment_image per image, finalize_job once all have returned."""
    chord(segment_image.s(job_id, name) for name in names)(finalize_job.s(job_id))
