from __future__ import annotations

import os
import time
from pathlib import Path

import redis

from backend import cleanup, jobs, storage
from backend.schemas import JobState

TTL = 3600


def finished_job(r: redis.Redis, results_dir: Path, archive_ttl: int) -> tuple[str, storage.UserDir]:
    job_id, user_hash = storage.new_token(), storage.new_token()
    folder = storage.user_dir(results_dir, user_hash)
    folder.parts.mkdir(parents=True)
    folder.archive.write_bytes(b"zip")
    jobs.create_job(r, job_id, user_hash, {"x.png": "x.png"}, {}, deadline_s=60, ttl=TTL)
    jobs.transition(r, job_id, JobState.ARCHIVING, [JobState.QUEUED])
    jobs.finish(
        r, job_id, user_hash, JobState.COMPLETED, now=time.time(), archive_ttl=archive_ttl, record_ttl=TTL
    )
    return job_id, folder


def state(r: redis.Redis, job_id: str) -> JobState:
    job = jobs.get_job(r, job_id)
    assert job is not None
    return job.state


def test_expire_user_waits_for_the_expiry_then_deletes_once(r: redis.Redis, results_dir: Path) -> None:
    job_id, folder = finished_job(r, results_dir, archive_ttl=100)
    user_hash = folder.root.name
    assert cleanup.expire_user(r, user_hash, time.time()) is False  # an early timer changes nothing
    assert folder.archive.exists() and state(r, job_id) == JobState.COMPLETED
    later = time.time() + 101
    assert cleanup.expire_user(r, user_hash, later) is True
    assert not folder.root.exists() and state(r, job_id) == JobState.EXPIRED
    assert user_hash not in jobs.due_for_expiry(r, later)
    assert cleanup.expire_user(r, user_hash, later) is True  # idempotent: timer and sweeper may both run
    assert state(r, job_id) == JobState.EXPIRED


def test_sweep_expires_due_jobs_and_removes_old_orphans(r: redis.Redis, results_dir: Path) -> None:
    due_job, due = finished_job(r, results_dir, archive_ttl=1)
    kept_job, kept = finished_job(r, results_dir, archive_ttl=1000)
    old_orphan, young_orphan = results_dir / storage.new_token(), results_dir / storage.new_token()
    other = results_dir / "not-a-user-folder"
    for path in (old_orphan, young_orphan, other):
        path.mkdir(parents=True)
    hour_ago = time.time() - cleanup.ORPHAN_AGE_SECONDS - 5
    for path in (old_orphan, other):
        os.utime(path, (hour_ago, hour_ago))

    result = cleanup.sweep(r, now=time.time() + 2)

    assert due.root.name in result.expired and not due.root.exists()
    assert state(r, due_job) == JobState.EXPIRED
    assert kept.archive.exists() and state(r, kept_job) == JobState.COMPLETED
    assert old_orphan.name in result.orphans and not old_orphan.exists()
    assert young_orphan.exists() and other.exists()


def test_sweep_reports_overdue_jobs_once_per_retry_period(r: redis.Redis, results_dir: Path) -> None:
    job_id, user_hash = storage.new_token(), storage.new_token()
    jobs.create_job(r, job_id, user_hash, {"x.png": "x.png"}, {}, deadline_s=1, ttl=TTL)
    (results_dir / user_hash).mkdir(parents=True)
    now = time.time() + 2
    assert job_id in cleanup.sweep(r, now=now).overdue_jobs
    assert job_id not in cleanup.sweep(r, now=now + 1).overdue_jobs  # postponed, not re-driven every sweep
    assert (results_dir / user_hash).exists()  # an active job's folder is never swept
    assert job_id in cleanup.sweep(r, now=now + 61).overdue_jobs


def test_sweep_of_a_missing_results_dir_creates_nothing(r: redis.Redis, results_dir: Path) -> None:
    cleanup.sweep(r)
    assert not results_dir.exists()
