"""The index of jobs by creation time (keys.CREATED_INDEX): pages of recent jobs for GET /api/tasks.

Job records expire on their own (JOB_RECORD_TTL_SECONDS after their last write) but a sorted set entry does
not, so entries are dropped when a listing meets them and by the sweeper's prune pass.
"""

from __future__ import annotations

from typing import Protocol, cast

import redis

from backend.jobs.keys import CREATED_INDEX, owner_index
from backend.jobs.models import Job, JobState


class JobRecords(Protocol):
    """What the index needs of the job store (backend.jobs.store.JobStore), without importing it."""

    client: redis.Redis

    def get_jobs(self, job_ids: list[str]) -> list[Job | None]: ...

    def states(self, job_ids: list[str]) -> list[str | None]: ...


BATCH = 500


class JobIndex:
    """The recent jobs of a JobStore (JobStore.index)."""

    def __init__(self, store: JobRecords) -> None:
        self.store = store

    def recent_jobs(
        self, *, offset: int, count: int, state: JobState | None = None, owner: str | None = None
    ) -> list[Job]:
        """Up to `count` jobs, newest first, after skipping `offset` (of those in `state`, if given; of
        `owner`'s jobs only, if given).

        Scans the index in batches reading only each job's state, then the full records of the jobs returned.
        """
        client = self.store.client
        index = CREATED_INDEX if owner is None else owner_index(owner)
        chosen: list[str] = []
        position = skipped = offset if state is None else 0
        while len(chosen) < count:
            ids = cast(list[str], client.zrevrange(index, position, position + max(count, BATCH) - 1))
            if not ids:
                break
            position += len(ids)
            found = self.store.states(ids)
            for job_id, job_state in zip(ids, found, strict=True):
                if job_state is None or (state is not None and job_state != state):
                    continue
                if skipped < offset:
                    skipped += 1
                elif len(chosen) < count:
                    chosen.append(job_id)
            gone = [job_id for job_id, job_state in zip(ids, found, strict=True) if job_state is None]
            if gone:
                client.zrem(index, *gone)
                position -= len(gone)  # the entries after them moved up
        return [job for job in self.store.get_jobs(chosen) if job is not None]

    def prune(self, older_than: float, batch: int = 1000) -> int:
        """Drop entries created before `older_than` whose record has expired; returns how many went."""
        client = self.store.client
        candidates = cast(
            list[str], client.zrangebyscore(CREATED_INDEX, "-inf", older_than, start=0, num=batch)
        )
        states = self.store.states(candidates)
        gone = [job_id for job_id, state in zip(candidates, states, strict=True) if state is None]
        if gone:
            client.zrem(CREATED_INDEX, *gone)
        return len(gone)
