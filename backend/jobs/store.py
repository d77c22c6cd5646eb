"""Job records in Redis: the single source of truth for state, progress, errors and expiry.

A JobStore holds the Redis client and the record TTL; it owns the job record and the expiry and deadline
indexes (key layout: backend.jobs.keys). Its `images` are the per-image hashes and sets of each job
(backend.jobs.images), its `index` the listing of recent jobs (backend.jobs.index).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import cast

import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from backend.core.config import Settings
from backend.jobs.images import ImageRecords
from backend.jobs.index import JobIndex
from backend.jobs.keys import (
    ACTIVE_INDEX,
    CREATED_INDEX,
    EXPIRY_INDEX,
    JOB_SUFFIXES,
    hash_fields,
    job_key,
    lock_key,
    owner_index,
    touch,
    user_key,
)
from backend.jobs.models import Job, JobState

Redis = redis.Redis
RETRY_INTERVAL_SECONDS = 0.5

# Compare-and-set of the state field plus extra fields, atomically.
# ARGV: to_state, n_allowed, allowed..., field, value, field, value...
_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return 0 end
local n = tonumber(ARGV[2])
for i = 3, 2 + n do
  if ARGV[i] == cur then
    redis.call('HSET', KEYS[1], 'state', ARGV[1])
    for j = 3 + n, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1]) end
    redis.call('PUBLISH', KEYS[1] .. ':state', ARGV[1])
    return 1
  end
end
return 0
"""


def connect(url: str, *, retry_seconds: float = 1.0, socket_timeout: float = 10) -> Redis:
    """A client with short timeouts that retries a lost connection every 0.5 s for `retry_seconds`.

    The API keeps the default (a dead Redis answers 503 in about a second); workers pass
    REDIS_RETRY_SECONDS, so an image in progress survives a Redis restart instead of being lost with it.
    """
    retries = math.ceil(retry_seconds / RETRY_INTERVAL_SECONDS)
    retry = Retry(ConstantBackoff(RETRY_INTERVAL_SECONDS), retries, supported_errors=(redis.ConnectionError,))
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=socket_timeout,
        health_check_interval=30,
        retry=retry,
    )


class JobStore:
    """The jobs in one Redis: every key of a job expires `record_ttl` seconds after its last write."""

    def __init__(self, client: Redis, *, record_ttl: int, deadline_s: int, archive_ttl: int) -> None:
        self.client = client
        self.record_ttl = record_ttl  # JOB_RECORD_TTL_SECONDS
        self.deadline_s = deadline_s  # JOB_DEADLINE_SECONDS: the sweeper closes a job not finished by then
        self.archive_ttl = archive_ttl  # ARCHIVE_TTL_SECONDS: a finished job's files are deleted after it
        self.images = ImageRecords(client, record_ttl=record_ttl)
        self.index = JobIndex(self)

    @classmethod
    def from_settings(cls, client: Redis, settings: Settings) -> JobStore:
        return cls(
            client,
            record_ttl=settings.JOB_RECORD_TTL_SECONDS,
            deadline_s=settings.JOB_DEADLINE_SECONDS,
            archive_ttl=settings.ARCHIVE_TTL_SECONDS,
        )

    def create_job(
        self,
        job_id: str,
        user_hash: str,
        outputs: Mapping[str, str],
        entries: Mapping[str, str],
        owner: str | None = None,
    ) -> float:
        """Store a queued job for these inputs; returns created_at.

        `outputs` maps each input name to its output name, `entries` to its ZipEntry record in upload.zip;
        `owner` (with auth on) is also indexed for its GET /api/tasks.
        """
        pipe = self.client.pipeline()
        parts = {":inputs": outputs, ":entries": entries}
        now = self.add_queued_job(pipe, job_id, user_hash, len(outputs), owner, parts=parts)
        pipe.execute()
        return now

    def add_queued_job(
        self,
        pipe: redis.client.Pipeline,
        job_id: str,
        user_hash: str,
        total: int,
        owner: str | None = None,
        kind: str | None = None,
        parts: Mapping[str, Mapping[str, str]] | None = None,
    ) -> float:
        """Queue on `pipe` what every new job writes (record, user key, owner and time indexes); created_at.

        `parts` maps a key suffix (JOB_SUFFIXES) to its hash: an upload's inputs and entries (create_job), an
        area job's request (backend.jobs.areas). They are written before the TTLs are set on every key.
        """
        now = time.time()
        record: dict[str, str | int | float] = {
            "job_id": job_id,
            "user_hash": user_hash,
            "state": JobState.QUEUED,
            "total": total,
            "created_at": now,
        }
        if kind is not None:
            record["kind"] = kind
        if owner is not None:
            record["owner"] = owner
            pipe.zadd(owner_index(owner), {job_id: now})
            pipe.expire(owner_index(owner), self.record_ttl)
        pipe.hset(job_key(job_id), mapping=record)  # type: ignore[arg-type]
        for suffix, fields in (parts or {}).items():
            if fields:  # Redis has no empty hash
                pipe.hset(job_key(job_id, suffix), mapping=hash_fields(fields))
        pipe.set(user_key(user_hash), job_id)
        pipe.zadd(ACTIVE_INDEX, {job_id: now + self.deadline_s})
        pipe.zadd(CREATED_INDEX, {job_id: now})
        touch(pipe, job_id, user_hash, self.record_ttl)
        return now

    def delete_job(self, job_id: str, user_hash: str) -> None:
        """Forget a job that never started (its chord could not be sent)."""
        self.client.delete(*(job_key(job_id, s) for s in JOB_SUFFIXES), user_key(user_hash))
        self.client.zrem(ACTIVE_INDEX, job_id)
        self.client.zrem(CREATED_INDEX, job_id)

    def get_job(self, job_id: str) -> Job | None:
        return self.get_jobs([job_id])[0]

    def get_jobs(self, job_ids: list[str]) -> list[Job | None]:
        """Jobs in one round trip (None where the record is gone)."""
        pipe = self.client.pipeline()
        for job_id in job_ids:
            pipe.hgetall(job_key(job_id))
            pipe.scard(job_key(job_id, ":done"))
            pipe.scard(job_key(job_id, ":failed"))
        replies = pipe.execute()
        return [
            Job.model_validate({**fields, "done": done, "failed": failed}) if fields else None
            for fields, done, failed in zip(replies[0::3], replies[1::3], replies[2::3], strict=True)
        ]

    def states(self, job_ids: list[str]) -> list[str | None]:
        """The state of each job in one round trip; None where the record is gone (expired)."""
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(job_key(job_id), "state")
        found: list[str | None] = pipe.execute()
        return found

    def job_for_user(self, user_hash: str) -> str | None:
        return cast(str | None, self.client.get(user_key(user_hash)))

    def transition(self, job_id: str, to: JobState, allowed: Iterable[JobState], **fields: object) -> bool:
        """Move to `to` only from one of `allowed`, setting `fields` too; False if the state was elsewhere.

        The new state is published on keys.state_channel(job_id), for the clients waiting on
        GET /api/status?wait=.
        """
        froms = [str(s) for s in allowed]
        pairs = [str(x) for kv in fields.items() for x in kv]
        return bool(self.client.eval(_TRANSITION, 1, job_key(job_id), str(to), len(froms), *froms, *pairs))

    def mark_started(self, job_id: str) -> bool:
        """queued -> processing; True only for the first caller, so 'started' is logged once."""
        return self.transition(job_id, JobState.PROCESSING, [JobState.QUEUED], started_at=time.time())

    def finish(self, job_id: str, user_hash: str, state: JobState, *, now: float) -> float | None:
        """archiving -> completed/failed at `now`, index the expiry; expires_at, or None if another won."""
        expires_at = now + self.archive_ttl
        if not self.transition(job_id, state, [JobState.ARCHIVING], finished_at=now, expires_at=expires_at):
            return None
        pipe = self.client.pipeline()
        pipe.zrem(ACTIVE_INDEX, job_id)
        pipe.zadd(EXPIRY_INDEX, {user_hash: expires_at})
        touch(pipe, job_id, user_hash, self.record_ttl)
        pipe.execute()
        return expires_at

    def mark_expired(self, job_id: str, user_hash: str) -> bool:
        """completed -> expired once its files are gone; failed jobs stay failed (the more useful answer)."""
        changed = self.transition(job_id, JobState.EXPIRED, [JobState.COMPLETED])
        pipe = self.client.pipeline()
        pipe.zrem(EXPIRY_INDEX, user_hash)
        touch(pipe, job_id, user_hash, self.record_ttl)
        pipe.execute()
        return changed

    def forget_expiry(self, user_hash: str) -> None:
        """Drop a user hash from the expiry index (its job record is gone)."""
        self.client.zrem(EXPIRY_INDEX, user_hash)

    def due_for_expiry(self, now: float) -> list[str]:
        return cast(list[str], self.client.zrangebyscore(EXPIRY_INDEX, "-inf", now))

    def active_jobs(self, limit: int = 1000) -> list[str]:
        """Jobs not closed yet (queued, processing, archiving), soonest deadline first."""
        return cast(list[str], self.client.zrange(ACTIVE_INDEX, 0, limit - 1))

    def overdue_jobs(self, now: float) -> list[str]:
        return cast(list[str], self.client.zrangebyscore(ACTIVE_INDEX, "-inf", now))

    def postpone_deadline(self, job_id: str, until: float) -> None:
        """Push an overdue job's deadline so the sweeper re-drives it once per `until`, not every sweep."""
        self.client.zadd(ACTIVE_INDEX, {job_id: until}, xx=True)

    def acquire_lock(self, name: str, ttl: int) -> bool:
        return bool(self.client.set(lock_key(name), "1", nx=True, ex=ttl))

    def release_lock(self, name: str) -> None:
        self.client.delete(lock_key(name))
