"""Celery tasks: thin wrappers around backend.worker.segment, .finalize and .expiry; arguments are ids only.

The task names are those of the module's old place, `backend.tasks.*`: messages already queued (chord members,
expiry timers with a countdown) and beat's schedule name them, so they must survive an upgrade.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter

import redis
from celery import Task
from celery.exceptions import Reject

from backend.core.celery_app import celery_app
from backend.core.config import settings
from backend.worker import expiry, finalize, segment
from backend.worker.context import WorkerContext

FINALIZE_RETRY_SECONDS = 10
log = logging.getLogger(__name__)


@functools.cache
def _context() -> WorkerContext:
    """One per worker process: its Redis client rides out a Redis restart, its ML client survives the fork."""
    return WorkerContext.from_settings(settings)


@celery_app.task(name="backend.tasks.segment_images")
def segment_images(job_id: str, names: list[str]) -> dict[str, int]:
    """Chord member: segment a group of images; error records, never an exception, so the chord completes.

    Returns the count of each outcome only: the images' records are in Redis, and a list of them as the
    result was serialised, stored, logged and handed to the callback for nothing (~1 ms per member).
    """
    try:
        outcomes = segment.process_images(_context(), job_id, names)
    except redis.RedisError as exc:
        # Redis paused or gone past REDIS_RETRY_SECONDS: back to the queue (or, if Redis cannot take it yet,
        # redelivered after the visibility timeout); the work done so far is recorded and not done again.
        log.warning("job %s: Redis failed during a chord member (%s); requeued", job_id, exc)
        raise Reject(exc, requeue=True) from exc
    except Exception:  # anything else: an error record, never an exception, so the chord completes
        log.exception("job %s: chord member of %d images failed", job_id, len(names))
        return {"error": len(names)}
    return dict(Counter(str(outcome["status"]) for outcome in outcomes))


@celery_app.task(name="backend.tasks.finalize_job", bind=True, max_retries=30, ignore_result=True)
def finalize_job(self: Task, _results: list[dict[str, int]] | None, job_id: str, force: bool = False) -> None:
    """Chord callback (and the sweeper's re-drive): archive the job and start its expiry timer.

    The chord's own results are not used: the per-image records in Redis are complete and survive redelivery.
    """
    try:
        expires_at = finalize.finalize(_context(), job_id, force=force)
    except finalize.ResultsPending as exc:
        raise self.retry(exc=exc, countdown=FINALIZE_RETRY_SECONDS) from exc
    if expires_at is not None:
        delete_results.apply_async((job_id,), countdown=max(0.0, expires_at - time.time()))


@celery_app.task(name="backend.tasks.delete_results", ignore_result=True)
def delete_results(job_id: str) -> bool:
    """Expiry timer: delete the job's folder once due (idempotent; the sweeper does it if this is lost).

    The argument is the job id, and the user hash is looked up here: task arguments are logged and shown by
    monitoring, and the user hash is the download key. A timer queued before this change carries the user
    hash instead (there is no job of that id): it is still honoured.
    """
    ctx = _context()
    job = ctx.store.get_job(job_id)
    return expiry.expire_user(ctx, job.user_hash if job is not None else job_id, time.time())


@celery_app.task(name="backend.tasks.sweep", ignore_result=True)
def sweep() -> dict[str, list[str]]:
    """Periodic backstop: expire what is due, re-drive jobs past their deadline, remove orphan folders."""
    result = expiry.sweep(_context())
    for job_id in result.overdue_jobs:
        finalize_job.delay(None, job_id, force=True)
    for job_id in result.stalled_jobs:
        finalize_job.delay(None, job_id)
    return result.model_dump()
