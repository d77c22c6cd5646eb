"""Dependencies shared by the routes: settings, the job store, the results folder, the metrics, and token
checks that 404 before any I/O."""

from __future__ import annotations

from typing import Annotated

import redis.asyncio
from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from backend.api import ops_auth
from backend.auth import access, identify
from backend.auth.principal import Principal
from backend.core.config import Settings, settings
from backend.jobs.store import JobStore, Redis
from backend.ops.metrics import Metrics
from backend.storage.layout import ResultsDir, is_token


async def get_settings() -> Settings:
    return settings


async def get_redis(request: Request) -> Redis:
    client: Redis = request.app.state.redis
    return client


RedisClient = Annotated[Redis, Depends(get_redis)]
CurrentSettings = Annotated[Settings, Depends(get_settings)]


async def get_async_redis(request: Request) -> redis.asyncio.Redis:
    client: redis.asyncio.Redis = request.app.state.redis_async
    return client


async def get_store(
    client: Annotated[Redis, Depends(get_redis)], settings: Annotated[Settings, Depends(get_settings)]
) -> JobStore:
    return JobStore.from_settings(client, settings)


async def get_results(settings: Annotated[Settings, Depends(get_settings)]) -> ResultsDir:
    return ResultsDir(settings.RESULTS_DIR)


async def get_metrics(client: Annotated[Redis, Depends(get_redis)]) -> Metrics:
    return Metrics(client)


async def caller(request: Request, client: RedisClient, settings: CurrentSettings) -> Principal | None:
    """Who is calling (a 401 for a missing or refused credential); None when AUTH_MODE is none."""
    if settings.AUTH_MODE == "none":  # no I/O, no thread hop: status polls cost what they did
        return None
    return await run_in_threadpool(identify.authenticate, request.headers, client, settings)


async def link_caller(request: Request, client: RedisClient, settings: CurrentSettings) -> Principal | None:
    """The caller of a user-hash route: nobody to check when AUTH_SHAREABLE_LINKS lets the hash alone in."""
    if settings.AUTH_SHAREABLE_LINKS:
        return None
    return await caller(request, client, settings)


async def valid_user_hash(
    user_hash: str, client: RedisClient, who: Annotated[Principal | None, Depends(link_caller)]
) -> str:
    """A malformed hash cannot name a folder: 404 without touching Redis or the disk; another owner's: 404."""
    if not is_token(user_hash):
        raise HTTPException(404, "No results for this user hash: a user hash is 32 lowercase hex characters.")
    if who is not None:
        await run_in_threadpool(access.check_user_hash, client, who, user_hash)
    return user_hash


async def valid_job_id(
    job_id: str, client: RedisClient, who: Annotated[Principal | None, Depends(caller)]
) -> str:
    """A malformed id: 404 without I/O; another owner's job: the same 404 as a job that does not exist."""
    if not is_token(job_id):
        raise HTTPException(404, "No such job: a job id is 32 lowercase hex characters.")
    if who is not None:
        await run_in_threadpool(access.check_job, client, who, job_id)
    return job_id


def operator_access(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """Operator views list job ids (and so download links): the operator token, from any address alike."""
    ops_auth.check(request, settings)


async def tasks_scope(request: Request, client: RedisClient, settings: CurrentSettings) -> str | None:
    """Whose jobs GET /api/tasks lists: None for all (the operator token; an admin key or role), else the
    caller's own. With AUTH_MODE none, only the operator token, as before accounts existed."""
    if settings.AUTH_MODE == "none":
        await run_in_threadpool(ops_auth.check, request, settings)
        return None
    if access.holds_operator_token(request.headers, ops_auth.operator_token(settings)):
        return None
    who = await caller(request, client, settings)
    return None if who is None or who.admin else who.owner


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
AsyncRedisDep = Annotated[redis.asyncio.Redis, Depends(get_async_redis)]
StoreDep = Annotated[JobStore, Depends(get_store)]
ResultsDep = Annotated[ResultsDir, Depends(get_results)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ValidUserHash = Annotated[str, Depends(valid_user_hash)]
ValidJobId = Annotated[str, Depends(valid_job_id)]
CallerDep = Annotated[Principal | None, Depends(caller)]
