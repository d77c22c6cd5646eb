"""Expiry and housekeeping: delete a user's files when due, and the periodic sweep that backs up the timers.

The per-job delete task (countdown = ARCHIVE_TTL_SECONDS) is the fast path; the sweep is the backstop for a
timer lost with a killed worker (its ETA message only returns after the broker's visibility timeout), for
jobs whose chord never completes, and for folders nobody owns any more.
"""

from __future__ import annotations

import logging
import time

from pydantic import BaseModel

from backend.core.config import settings
from backend.core.logging import job_event
from backend.jobs.models import JobState
from backend.storage.reserve import DiskReservations
from backend.worker.context import WorkerContext

log = logging.getLogger("backend.cleanup")  # the module's name before it moved, for log filters

ORPHAN_AGE_SECONDS = 3600
# A job whose images all have a result but which is not closed (its chord callback was lost, e.g. with a Redis
# pause) is re-driven by the sweeper, at most once per this many seconds.
STALLED_REDRIVE_SECONDS = 60


class SweepResult(BaseModel):
    expired: list[str] = []
    overdue_jobs: list[str] = []
    stalled_jobs: list[str] = []
    orphans: list[str] = []


def expire_user(ctx: WorkerContext, user_hash: str, now: float) -> bool:
    """Delete results/<user_hash> if its expiry has passed (or it has no job); True if it was due.

    Idempotent: a folder already gone and a job already expired are fine, so a timer and the sweep may race.
    """
    store = ctx.store
    job_id = store.job_for_user(user_hash)
    job = store.get_job(job_id) if job_id else None
    if job is not None and (job.expires_at is None or job.expires_at > now):
        return False
    deleted = ctx.results.delete_user(user_hash)
    if job is None:
        store.forget_expiry(user_hash)
        if deleted:
            ctx.metrics.count_deletion("orphan")
        return True
    if store.mark_expired(job.job_id, user_hash):
        job_event("expired", job.job_id)
    if deleted:
        ctx.metrics.count_deletion("expired")
        job_event("deleted", job.job_id)
    return True


def sweep(ctx: WorkerContext, now: float | None = None) -> SweepResult:
    """One housekeeping pass; returns what it did (overdue jobs are for the caller to re-drive)."""
    now = time.time() if now is None else now
    store = ctx.store
    result = SweepResult()
    if not store.acquire_lock("sweep", ttl=max(60, int(settings.SWEEP_INTERVAL_SECONDS * 4))):
        return result  # another worker is sweeping
    try:
        result.expired = [uh for uh in store.due_for_expiry(now) if expire_user(ctx, uh, now)]
        result.overdue_jobs = store.overdue_jobs(now)
        result.stalled_jobs = _stalled_jobs(ctx, set(result.overdue_jobs))
        for job_id in result.overdue_jobs:
            # Re-drive at most once a minute: finalize takes a lock and may take a while on a big job.
            store.postpone_deadline(job_id, now + max(60.0, 2 * settings.SWEEP_INTERVAL_SECONDS))
            job_event("deadline_passed", job_id)
        result.orphans = _sweep_folders(ctx, now)
        DiskReservations(store.client, ctx.results, factor=0, floor_mb=0).prune()
        store.index.prune(older_than=now - store.record_ttl)
    finally:
        store.release_lock("sweep")
    return result


def _stalled_jobs(ctx: WorkerContext, overdue: set[str]) -> list[str]:
    """Active jobs with a result for every image, not yet re-driven within STALLED_REDRIVE_SECONDS."""
    store = ctx.store
    candidates = [job_id for job_id in store.active_jobs() if job_id not in overdue]
    stalled = []
    for job in store.get_jobs(candidates):
        if job is None or not job.active or job.done + job.failed < job.total:
            continue
        if job.total == 0 or job.state in (JobState.SEARCHING, JobState.FETCHING):
            continue  # an area job whose images are not known yet (backend.worker.area)
        if store.acquire_lock(f"redrive:{job.job_id}", ttl=STALLED_REDRIVE_SECONDS):  # never released
            job_event("stalled", job.job_id, done=job.done, failed=job.failed)
            stalled.append(job.job_id)
    return stalled


def _sweep_folders(ctx: WorkerContext, now: float) -> list[str]:
    """Remove user folders past their job's expiry, and those with no job record older than an hour."""
    removed = []
    for user_hash, mtime in ctx.results.users():
        job_id = ctx.store.job_for_user(user_hash)
        if job_id is None:
            if now - mtime > ORPHAN_AGE_SECONDS and ctx.results.delete_user(user_hash):
                log.info("deleted an orphan folder (no job record)")  # its name is a download key
                ctx.metrics.count_deletion("orphan")
                removed.append(user_hash)
        elif expire_user(ctx, user_hash, now):
            removed.append(user_hash)
    return removed
