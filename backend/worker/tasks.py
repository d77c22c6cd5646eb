"""Celery tasks: thin wrappers around backend.pipeline and backend.cleanup, arguments are ids only."""

from __future__ import annotations

import functools
import time
from collections import Counter

from celery import Task, chord

from backend import cleanup, finalize, jobs, pipeline
from backend.celery_app import celery_app
from backend.core.config import settings

FINALIZE_RETRY_SECONDS = 10


@functools.cache
def _redis() -> jobs.Redis:
    """One client per worker process (redis-py resets its pool after a fork); it rides out a Redis restart."""
    return jobs.connect(settings.redis_url, retry_seconds=settings.REDIS_RETRY_SECONDS)


@celery_app.task(name="backend.tasks.segment_images")
def segment_images(job_id: str, names: list[str]) -> dict[str, int]:
    """Chord member: segment a group of images; error records, never an exception, so the chord completes.

    Returns the count of each outcome only: the images' records are in Redis, and a list of them as the
    result was serialised, stored, logged and handed to the callback for nothing (~1 ms per member).
    """
    outcomes = pipeline.process_images(_redis(), job_id, names)
    return dict(Counter(str(outcome["status"]) for outcome in outcomes))


@celery_app.task(name="backend.tasks.finalize_job", bind=True, max_retries=30, ignore_result=True)
def finalize_job(self: Task, _results: list[dict[str, int]] | None, job_id: str, force: bool = False) -> None:
    """Chord callback (and the sweeper's re-drive): archive the job and start its expiry timer.

    The chord's own results are not used: the per-image records in Redis are complete and survive redelivery.
    """
    try:
        expires_at = finalize.finalize(_redis(), job_id, force=force)
    except finalize.ResultsPending as exc:
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


def plan_batches(sizes: dict[str, int], per_task: int, max_bytes: int, workers: int) -> list[list[str]]:
    """Group a job's images (name -> file size, in order) into chord members.

    A task and an HTTP request per 256x256 tile cost about as much CPU as the model itself, so tiles travel
    in groups of up to `per_task`. The groups are as even as can be and their number is a multiple of the
    `workers` pool processes: the pool works through them in rounds, and a last round of one short group
    would leave the other processes, and half the ML service's cores, idle at the end of the job (~4 % of a
    200-tile job, measured: docs/benchmarks.md). A group is also closed before it passes `max_bytes`, so
    large scenes go alone and spread over the workers.
    """
    count = len(sizes)
    if not count:
        return []
    workers = max(1, workers)
    members = -(-count // max(1, per_task))
    members = min(count, -(-members // workers) * workers)
    share, extra = divmod(count, members)
    targets = [share + 1] * extra + [share] * (members - extra)
    groups: list[list[str]] = []
    group: list[str] = []
    group_bytes = 0
    for name, size in sizes.items():
        if group and (len(group) >= targets[min(len(groups), members - 1)] or group_bytes + size > max_bytes):
            groups.append(group)
            group, group_bytes = [], 0
        group.append(name)
        group_bytes += size
    groups.append(group)
    return groups


def launch_job(job_id: str, sizes: dict[str, int]) -> None:
    """Send the chord: one segment_images per group of images, finalize_job once all have returned."""
    groups = plan_batches(
        sizes, settings.IMAGES_PER_TASK, settings.TASK_MAX_MB * 1024 * 1024, settings.WORKER_CONCURRENCY
    )
    chord(segment_images.s(job_id, names) for names in groups)(finalize_job.s(job_id))
