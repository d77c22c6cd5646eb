"""The Redis key layout of jobs, shared by the job store, the per-image records, the index and the metrics.

Keys (all under PREFIX; a job's keys expire JOB_RECORD_TTL_SECONDS after the last write, so a finished job
keeps answering 410 rather than 404 for a week):
  job:<id>             hash   job_id, user_hash, state, total, model_version, created/finished/expires_at
  job:<id>:inputs      hash   input name -> output name
  job:<id>:entries     hash   input name -> where its bytes lie in upload.zip (ZipEntry.to_record)
  job:<id>:results     hash   input name -> ImageResult JSON
  job:<id>:parts       hash   output name -> id of the part with its mask and overlay (backend.storage.parts)
  job:<id>:done/failed set    input names (SADD/SCARD: a redelivered task cannot count twice)
  job:<id>:deliveries  hash   input name -> times a worker started it
  job:<id>:area        hash   area jobs only: the request, scenes n of m, bytes read, reason (jobs.areas)
  user:<hash>          string job id
  owner:<owner>:created zset  the owner's job ids scored by created_at (with auth on; backend/auth)
  expiry               zset   user hash scored by expires_at
  active               zset   job id scored by its deadline
  created              zset   job id scored by created_at (backend.jobs.index, GET /api/tasks)
"""

from __future__ import annotations

from collections.abc import Mapping

import redis
from redis.typing import EncodableT, FieldT

PREFIX = "oilspill:"
EXPIRY_INDEX = f"{PREFIX}expiry"
ACTIVE_INDEX = f"{PREFIX}active"
CREATED_INDEX = f"{PREFIX}created"
JOB_SUFFIXES = (
    *("", ":inputs", ":entries", ":results", ":parts", ":done", ":failed", ":deliveries"),
    ":area",  # area jobs: request, stage progress, reason (backend.jobs.areas)
)


def job_key(job_id: str, suffix: str = "") -> str:
    return f"{PREFIX}job:{job_id}{suffix}"


def state_channel(job_id: str) -> str:
    """The pub/sub channel on which JobStore.transition announces each new state of the job."""
    return job_key(job_id, ":state")


def user_key(user_hash: str) -> str:
    return f"{PREFIX}user:{user_hash}"


def owner_index(owner: str) -> str:
    """The jobs of one owner (AUTH_MODE api-key or oidc) by creation time, for their GET /api/tasks."""
    return f"{PREFIX}owner:{owner}:created"


def lock_key(name: str) -> str:
    return f"{PREFIX}lock:{name}"


def touch(pipe: redis.client.Pipeline, job_id: str, user_hash: str | None, ttl: int) -> None:
    """Queue the expiry of every key of the job (and its user hash) `ttl` seconds from now."""
    for suffix in JOB_SUFFIXES:
        pipe.expire(job_key(job_id, suffix), ttl)
    if user_hash:
        pipe.expire(user_key(user_hash), ttl)


def hash_fields(mapping: Mapping[str, str]) -> dict[FieldT, EncodableT]:
    """A hash's fields as redis-py types hset's `mapping` (which, as a Mapping, is invariant in its keys)."""
    return dict(mapping.items())
