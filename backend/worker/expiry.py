"""Expiry and housekeeping: delete a user's files when due, and the periodic sweep that backs up the timers.

The per-job delete task (countdown = ARCHIVE_TTL_SECONDS) is the fast path; the sweep is the backstop for a
timer lost with a killed worker (its ETA message only returns after the broker's visibility timeout), for
jobs whose chord never completes, and for folders nobody owns any more.
"""

from __future__ import annotations

import logging
import time

from pydantic import BaseModel

from backend import job_index, jobs, metrics, storage
from backend.core.config import settings
from backend.core.logging import job_event

log = logging.getLogger(__name__)

ORPHAN_AGE_SECONDS = 3600


class SweepResult(BaseModel):
    expired: list[str] = []
    overdue_jobs: list[str] = []
    orphans: list[str] = []


def expire_user(r: jobs.Redis, user_hash: str, now: float) -> bool:
    """Delete results/<user_hash> if its expiry has passed (or it has no job); True if it was due.

    Idempotent: a folder already gone and a job already expired are fine, so a timer and the sweep may race.
    """
    job_id = jobs.job_for_user(r, user_hash)
    job = jobs.get_job(r, job_id) if job_id else None
    if job is not None and (job.expires_at is None or job.expires_at > now):
        return False
    deleted = storage.delete_user_dir(settings.RESULTS_DIR, user_hash)
    if job is None:
        r.zrem(jobs.EXPIRY_INDEX, user_hash)
        if deleted:
            metrics.count_deletion(r, "orphan")
        return True
    if jobs.mark_expired(r, job.job_id, user_hash, record_ttl=settings.JOB_RECORD_TTL_SECONDS):
        job_event("expired", job.job_id, user_hash=user_hash)
    if deleted:
        metrics.count_deletion(r, "expired")
        job_event("deleted", job.job_id, user_hash=user_hash)
    return True


def sweep(r: jobs.Redis, now: float | None = None) -> SweepResult:
    """One housekeeping pass; returns what it did (overdue jobs are for the caller to re-drive)."""
    now = time.time() if now is None else now
    result = SweepResult()
    if not jobs.acquire_lock(r, "sweep", ttl=max(60, int(settings.SWEEP_INTERVAL_SECONDS * 4))):
        return result  # another worker is sweeping
    try:
        result.expired = [uh for uh in jobs.due_for_expiry(r, now) if expire_user(r, uh, now)]
        result.overdue_jobs = jobs.overdue_jobs(r, now)
        for job_id in result.overdue_jobs:
            # Re-drive at most once a minute: finalize takes a lock and may take a while on a big job.
            jobs.postpone_deadline(r, job_id, now + max(60.0, 2 * settings.SWEEP_INTERVAL_SECONDS))
            job_event("deadline_passed", job_id)
        result.orphans = _sweep_folders(r, now)
        job_index.prune(r, older_than=now - settings.JOB_RECORD_TTL_SECONDS)
    finally:
        jobs.release_lock(r, "sweep")
    return result


def _sweep_folders(r: jobs.Redis, now: float) -> list[str]:
    """Remove user folders past their job's expiry, and those with no job record older than an hour."""
    removed = []
    for user_hash, mtime in storage.user_dirs(settings.RESULTS_DIR):
        job_id = jobs.job_for_user(r, user_hash)
        if job_id is None:
            if now - mtime > ORPHAN_AGE_SECONDS and storage.delete_user_dir(settings.RESULTS_DIR, user_hash):
                log.info("deleted orphan folder %s (no job record)", user_hash)
                metrics.count_deletion(r, "orphan")
                removed.append(user_hash)
        elif expire_user(r, user_hash, now):
            removed.append(user_hash)
    return removed
