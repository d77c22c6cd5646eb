"""The index of jobs by creation time (jobs.CREATED_INDEX): pages of recent jobs for GET /api/tasks.

Job records expire on their own (JOB_RECORD_TTL_SECONDS after their last write) but a sorted set entry does
not, so entries are dropped when a listing meets them and by the sweeper's prune pass.
"""

from __future__ import annotations

from backend import jobs
from backend.schemas import JobState

BATCH = 500


def recent_jobs(r: jobs.Redis, *, offset: int, count: int, state: JobState | None = None) -> list[jobs.Job]:
    """Up to `count` jobs, newest first, after skipping `offset` (of those in `state`, if given).

    Scans the index in batches reading only each job's state, then the full records of the jobs returned.
    """
    chosen: list[str] = []
    position = skipped = offset if state is None else 0
    while len(chosen) < count:
        ids: list[str] = r.zrevrange(jobs.CREATED_INDEX, position, position + max(count, BATCH) - 1)
        if not ids:
            break
        position += len(ids)
        found = jobs.states(r, ids)
        for job_id, job_state in zip(ids, found, strict=True):
            if job_state is None or (state is not None and job_state != state):
                continue
            if skipped < offset:
                skipped += 1
            elif len(chosen) < count:
                chosen.append(job_id)
        gone = [job_id for job_id, job_state in zip(ids, found, strict=True) if job_state is None]
        if gone:
            r.zrem(jobs.CREATED_INDEX, *gone)
            position -= len(gone)  # the entries after them moved up
    return [job for job in jobs.get_jobs(r, chosen) if job is not None]


def prune(r: jobs.Redis, older_than: float, batch: int = 1000) -> int:
    """Drop entries created before `older_than` whose record has expired; returns how many went."""
    candidates: list[str] = r.zrangebyscore(jobs.CREATED_INDEX, "-inf", older_than, start=0, num=batch)
    gone = [
        job_id for job_id, state in zip(candidates, jobs.states(r, candidates), strict=True) if state is None
    ]
    if gone:
        r.zrem(jobs.CREATED_INDEX, *gone)
    return len(gone)
