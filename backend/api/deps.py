"""Dependencies shared by the routes: settings, the job store, the results folder, the metrics, and token
checks that 404 before any I/O."""

from __future__ import annotations

from typing import Annotated

import redis.asyncio
from fastapi import Depends, HTTPException, Request

from backend.api import ops_auth
from backend.core.config import Settings, settings
from backend.jobs.store import JobStore, Redis
from backend.ops.metrics import Metrics
from backend.storage.layout import ResultsDir, is_token


async def get_settings() -> Settings:
    return settings


async def get_redis(request: Request) -> Redis:
    client: Redis = request.app.state.redis
    return client


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


async def valid_user_hash(user_hash: str) -> str:
    """A malformed hash cannot name a folder: answer 404 without touching Redis or the disk."""
    if not is_token(user_hash):
        raise HTTPException(404, "No results for this user hash: a user hash is 32 lowercase hex characters.")
    return user_hash


async def valid_job_id(job_id: str) -> str:
    if not is_token(job_id):
        raise HTTPException(404, "No such job: a job id is 32 lowercase hex characters.")
    return job_id


def operator_access(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """Operator views list job ids (and so download links): the operator token, from any address alike."""
    ops_auth.check(request, settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
AsyncRedisDep = Annotated[redis.asyncio.Redis, Depends(get_async_redis)]
StoreDep = Annotated[JobStore, Depends(get_store)]
ResultsDep = Annotated[ResultsDir, Depends(get_results)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ValidUserHash = Annotated[str, Depends(valid_user_hash)]
ValidJobId = Annotated[str, Depends(valid_job_id)]
