from __future__ import annotations

import os
import time
from pathlib import Path

from backend.jobs.models import JobState
from backend.jobs.store import JobStore
from backend.storage.layout import UserDir, new_token
from backend.worker import expiry
from backend.worker.context import WorkerContext
from backend.worker.outputs import failed_result


def finished_job(ctx: WorkerContext, archive_ttl: int) -> tuple[str, UserDir]:
    job_id, user_hash = new_token(), new_token()
    folder = ctx.results.user(user_hash)
    folder.parts.mkdir(parents=True)
    folder.archive.write_bytes(b"zip")
    store = ctx.store
    store.create_job(job_id, user_hash, {"x.png": "x.png"}, {})
    store.transition(job_id, JobState.ARCHIVING, [JobState.QUEUED])
    timed = JobStore(
        store.client, record_ttl=store.record_ttl, deadline_s=store.deadline_s, archive_ttl=archive_ttl
    )
    timed.finish(job_id, user_hash, JobState.COMPLETED, now=time.time())
    return job_id, folder


def state(ctx: WorkerContext, job_id: str) -> JobState:
    job = ctx.store.get_job(job_id)
    assert job is not None
    return job.state


def test_expire_user_waits_for_the_expiry_then_deletes_once(ctx: WorkerContext) -> None:
    job_id, folder = finished_job(ctx, archive_ttl=100)
    user_hash = folder.root.name
    assert expiry.expire_user(ctx, user_hash, time.time()) is False  # an early timer changes nothing
    assert folder.archive.exists() and state(ctx, job_id) == JobState.COMPLETED
    later = time.time() + 101
    assert expiry.expire_user(ctx, user_hash, later) is True
    assert not folder.root.exists() and state(ctx, job_id) == JobState.EXPIRED
    assert user_hash not in ctx.store.due_for_expiry(later)
    assert expiry.expire_user(ctx, user_hash, later) is True  # idempotent: timer and sweeper may both run
    assert state(ctx, job_id) == JobState.EXPIRED


def test_sweep_expires_due_jobs_and_removes_old_orphans(ctx: WorkerContext, results_dir: Path) -> None:
    due_job, due = finished_job(ctx, archive_ttl=1)
    kept_job, kept = finished_job(ctx, archive_ttl=1000)
    old_orphan, young_orphan = results_dir / new_token(), results_dir / new_token()
    other = results_dir / "not-a-user-folder"
    for path in (old_orphan, young_orphan, other):
        path.mkdir(parents=True)
    hour_ago = time.time() - expiry.ORPHAN_AGE_SECONDS - 5
    for path in (old_orphan, other):
        os.utime(path, (hour_ago, hour_ago))

    result = expiry.sweep(ctx, now=time.time() + 2)

    assert due.root.name in result.expired and not due.root.exists()
    assert state(ctx, due_job) == JobState.EXPIRED
    assert kept.archive.exists() and state(ctx, kept_job) == JobState.COMPLETED
    assert old_orphan.name in result.orphans and not old_orphan.exists()
    assert young_orphan.exists() and other.exists()


def test_sweep_reports_overdue_jobs_once_per_retry_period(ctx: WorkerContext, results_dir: Path) -> None:
    job_id, user_hash = new_token(), new_token()
    hasty = JobStore(ctx.store.client, record_ttl=3600, deadline_s=1, archive_ttl=5)  # due in a second
    hasty.create_job(job_id, user_hash, {"x.png": "x.png"}, {})
    (results_dir / user_hash).mkdir(parents=True)
    now = time.time() + 2
    assert job_id in expiry.sweep(ctx, now=now).overdue_jobs
    assert job_id not in expiry.sweep(ctx, now=now + 1).overdue_jobs  # postponed, not re-driven every sweep
    assert (results_dir / user_hash).exists()  # an active job's folder is never swept
    assert job_id in expiry.sweep(ctx, now=now + 61).overdue_jobs


def test_sweep_of_a_missing_results_dir_creates_nothing(ctx: WorkerContext, results_dir: Path) -> None:
    expiry.sweep(ctx)
    assert not results_dir.exists()


def test_sweep_re_drives_a_job_whose_images_all_have_results_but_not_closed(ctx: WorkerContext) -> None:
    """The chord callback was lost (a Redis pause): the sweeper notices long before the deadline."""
    store = ctx.store
    stalled, partial = new_token(), new_token()
    for job_id in (stalled, partial):
        store.create_job(job_id, new_token(), {"a.png": "a.png", "b.png": "b.png"}, {})
        store.mark_started(job_id)
    done = [failed_result("a.png", "a.png", "x"), failed_result("b.png", "b.png", "y")]
    store.images.record_results(stalled, done, model_version=None, user_hash="u" * 32)
    store.images.record_results(partial, done[:1], model_version=None, user_hash="u" * 32)
    first = expiry.sweep(ctx)
    assert stalled in first.stalled_jobs and partial not in first.stalled_jobs
    assert stalled not in first.overdue_jobs  # its deadline is a minute away
    assert stalled not in expiry.sweep(ctx).stalled_jobs  # re-driven at most once per STALLED_REDRIVE_SECONDS
