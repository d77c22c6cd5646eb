"""Job records in Redis: the single source of truth for state, progress, errors and expiry.

This module owns the job record, the indexes and the key layout; the per-image hashes and sets are read and
written by backend.job_images.

Keys (all under PREFIX, all expiring JOB_RECORD_TTL_SECONDS after the last write, so a finished job keeps
answering 410 rather than 404 for a week):
  job:<id>             hash   job_id, user_hash, state, total, model_version, created/finished/expires_at
  job:<id>:inputs      hash   input name -> output name
  job:<id>:entries     hash   input name -> where its bytes lie in upload.zip (ZipEntry.to_record)
  job:<id>:results     hash   input name -> ImageResult JSON
  job:<id>:parts       hash   output name -> id of the part holding its mask and overlay (backend.parts)
  job:<id>:done/failed set    input names (SADD/SCARD: a redelivered task cannot count twice)
  job:<id>:deliveries  hash   input name -> times a worker started it
  user:<hash>          string job id
  expiry               zset   user hash scored by expires_at
  active               zset   job id scored by its deadline
  created              zset   job id scored by created_at (backend.job_index, GET /api/tasks)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping

import redis
from pydantic import BaseModel
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from backend.schemas import ACTIVE_STATES, JobState

PREFIX = "oilspill:"
EXPIRY_INDEX = f"{PREFIX}expiry"
ACTIVE_INDEX = f"{PREFIX}active"
CREATED_INDEX = f"{PREFIX}created"
_JOB_SUFFIXES = ("", ":inputs", ":entries", ":results", ":parts", ":done", ":failed", ":deliveries")

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


class Job(BaseModel):
    job_id: str
    user_hash: str
    state: JobState
    total: int
    done: int
    failed: int
    created_at: float
    finished_at: float | None = None
    expires_at: float | None = None
    model_version: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def connect(url: str, *, retry_seconds: float = 1.0) -> Redis:
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
        socket_timeout=10,
        health_check_interval=30,
        retry=retry,
    )


def job_key(job_id: str, suffix: str = "") -> str:
    return f"{PREFIX}job:{job_id}{suffix}"


def state_channel(job_id: str) -> str:
    """The pub/sub channel on which transition() announces each new state of the job."""
    return job_key(job_id, ":state")


def _user_key(user_hash: str) -> str:
    return f"{PREFIX}user:{user_hash}"


def touch(pipe: redis.client.Pipeline, job_id: str, user_hash: str | None, ttl: int) -> None:
    for suffix in _JOB_SUFFIXES:
        pipe.expire(job_key(job_id, suffix), ttl)
    if user_hash:
        pipe.expire(_user_key(user_hash), ttl)


def create_job(
    r: Redis,
    job_id: str,
    user_hash: str,
    outputs: Mapping[str, str],
    entries: Mapping[str, str],
    *,
    deadline_s: int,
    ttl: int,
) -> float:
    """Store a queued job for these inputs; returns created_at.

    `outputs` maps each input name to its output name, `entries` to its ZipEntry record in upload.zip.
    """
    now = time.time()
    pipe = r.pipeline()
    pipe.hset(
        job_key(job_id),
        mapping={
            "job_id": job_id,
            "user_hash": user_hash,
            "state": JobState.QUEUED,
            "total": len(outputs),
            "created_at": now,
        },
    )
    pipe.hset(job_key(job_id, ":inputs"), mapping=dict(outputs))
    if entries:
        pipe.hset(job_key(job_id, ":entries"), mapping=dict(entries))
    pipe.set(_user_key(user_hash), job_id)
    pipe.zadd(ACTIVE_INDEX, {job_id: now + deadline_s})
    pipe.zadd(CREATED_INDEX, {job_id: now})
    touch(pipe, job_id, user_hash, ttl)
    pipe.execute()
    return now


def delete_job(r: Redis, job_id: str, user_hash: str) -> None:
    """Forget a job that never started (its chord could not be sent)."""
    r.delete(*(job_key(job_id, s) for s in _JOB_SUFFIXES), _user_key(user_hash))
    r.zrem(ACTIVE_INDEX, job_id)
    r.zrem(CREATED_INDEX, job_id)


def get_job(r: Redis, job_id: str) -> Job | None:
    return get_jobs(r, [job_id])[0]


def get_jobs(r: Redis, job_ids: list[str]) -> list[Job | None]:
    """Jobs in one round trip (None where the record is gone)."""
    pipe = r.pipeline()
    for job_id in job_ids:
        pipe.hgetall(job_key(job_id))
        pipe.scard(job_key(job_id, ":done"))
        pipe.scard(job_key(job_id, ":failed"))
    replies = pipe.execute()
    return [
        Job.model_validate({**fields, "done": done, "failed": failed}) if fields else None
        for fields, done, failed in zip(replies[0::3], replies[1::3], replies[2::3], strict=True)
    ]


def states(r: Redis, job_ids: list[str]) -> list[str | None]:
    """The state of each job in one round trip; None where the record is gone (expired)."""
    pipe = r.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(job_key(job_id), "state")
    found: list[str | None] = pipe.execute()
    return found


def job_for_user(r: Redis, user_hash: str) -> str | None:
    job_id: str | None = r.get(_user_key(user_hash))
    return job_id


def transition(r: Redis, job_id: str, to: JobState, allowed: Iterable[JobState], **fields: object) -> bool:
    """Move to `to` only from one of `allowed`, setting `fields` too; False if the state was elsewhere.

    The new state is published on state_channel(job_id), for the clients waiting on GET /api/status?wait=.
    """
    allowed = [str(s) for s in allowed]
    pairs = [str(x) for kv in fields.items() for x in kv]
    return bool(r.eval(_TRANSITION, 1, job_key(job_id), str(to), len(allowed), *allowed, *pairs))


def mark_started(r: Redis, job_id: str) -> bool:
    """queued -> processing; True only for the first caller, so 'started' is logged once."""
    return transition(r, job_id, JobState.PROCESSING, [JobState.QUEUED], started_at=time.time())


def finish(
    r: Redis, job_id: str, user_hash: str, state: JobState, *, now: float, archive_ttl: int, record_ttl: int
) -> float | None:
    """archiving -> completed/failed at `now`, index the expiry; expires_at, or None if another caller won."""
    expires_at = now + archive_ttl
    if not transition(r, job_id, state, [JobState.ARCHIVING], finished_at=now, expires_at=expires_at):
        return None
    pipe = r.pipeline()
    pipe.zrem(ACTIVE_INDEX, job_id)
    pipe.zadd(EXPIRY_INDEX, {user_hash: expires_at})
    touch(pipe, job_id, user_hash, record_ttl)
    pipe.execute()
    return expires_at


def mark_expired(r: Redis, job_id: str, user_hash: str, *, record_ttl: int) -> bool:
    """completed -> expired once its files are gone; failed jobs stay failed (the more useful answer)."""
    changed = transition(r, job_id, JobState.EXPIRED, [JobState.COMPLETED])
    pipe = r.pipeline()
    pipe.zrem(EXPIRY_INDEX, user_hash)
    touch(pipe, job_id, user_hash, record_ttl)
    pipe.execute()
    return changed


def due_for_expiry(r: Redis, now: float) -> list[str]:
    due: list[str] = r.zrangebyscore(EXPIRY_INDEX, "-inf", now)
    return due


def overdue_jobs(r: Redis, now: float) -> list[str]:
    overdue: list[str] = r.zrangebyscore(ACTIVE_INDEX, "-inf", now)
    return overdue


def postpone_deadline(r: Redis, job_id: str, until: float) -> None:
    """Push an overdue job's deadline so the sweeper re-drives it once per `until`, not every sweep."""
    r.zadd(ACTIVE_INDEX, {job_id: until}, xx=True)


def acquire_lock(r: Redis, name: str, ttl: int) -> bool:
    return bool(r.set(f"{PREFIX}lock:{name}", "1", nx=True, ex=ttl))


def release_lock(r: Redis, name: str) -> None:
    r.delete(f"{PREFIX}lock:{name}")
