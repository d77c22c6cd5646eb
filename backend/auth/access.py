"""Whose job is this: a job records its owner, and with auth on only that owner (or an admin) sees it.

Another owner's job answers exactly as a job that does not exist (404, the same words), so job ids and
user hashes cannot be probed. Owners are kept in the job record (field `owner`) and in a per-owner index
of job ids by creation time, for GET /api/tasks.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import cast

import redis
from fastapi import HTTPException
from starlette.datastructures import Headers

from backend.auth.identify import credential
from backend.auth.principal import Principal
from backend.jobs.keys import job_key, user_key

NO_JOB = "No such job: it never existed, or its record expired."
NO_RESULTS = "No results for this user hash: it never existed, or its record expired."


def job_owner(client: redis.Redis, job_id: str) -> str | None:
    return cast(str | None, client.hget(job_key(job_id), "owner"))


def check_job(client: redis.Redis, caller: Principal | None, job_id: str) -> None:
    """404 unless `caller` may see job `job_id` (anyone may when auth is off)."""
    if caller is None or caller.admin:
        return
    if not caller.may_open(job_owner(client, job_id)):
        raise HTTPException(404, NO_JOB)


def check_user_hash(client: redis.Redis, caller: Principal | None, user_hash: str) -> None:
    """404 unless `caller` may see the job of `user_hash`."""
    if caller is None or caller.admin:
        return
    job_id = cast(str | None, client.get(user_key(user_hash)))
    if job_id is None or not caller.may_open(job_owner(client, job_id)):
        raise HTTPException(404, NO_RESULTS)


def holds_operator_token(headers: Headers, token: str) -> bool:
    """Whether the request's bearer is the operator token (which, with auth on, lists every job too)."""
    given = credential(headers)
    if given is None:
        return False
    return secrets.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(token.encode()).digest()
    )
