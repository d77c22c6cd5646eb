"""GET /api/health: 200 when Redis, the ML service and at least one worker answer, 503 otherwise."""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import UTC, datetime

import httpx
from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from backend.api.deps import RedisDep, SettingsDep
from backend.core.config import Settings
from backend.jobs.store import Redis
from backend.ops import monitor
from backend.ops.schemas import ComponentHealth, HealthReport, WorkersHealth
from backend.storage.layout import free_disk_mb

router = APIRouter(tags=["operations"])


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _check_redis(redis: Redis, timeout: float) -> ComponentHealth:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(run_in_threadpool(redis.ping), timeout)
        error = None
    except Exception as exc:  # any failure is the finding, reported in the body
        error = _error(exc)
    ms = round((time.perf_counter() - start) * 1000, 1)
    return ComponentHealth(status="error" if error else "ok", error=error, response_ms=ms)


@functools.cache
def _ml_client(base_url: str, timeout: float) -> httpx.Client:
    """One pooled client per process: creating one loads the CA bundle (a second on a busy host)."""
    return httpx.Client(base_url=base_url, timeout=timeout)


def _check_ml(settings: Settings) -> ComponentHealth:
    """The ML service's own readiness: 503 until its model is loaded."""
    start = time.perf_counter()
    try:
        response = _ml_client(settings.ML_SERVICE_URL, settings.MONITOR_TIMEOUT_SECONDS).get("/health")
        error = None if response.status_code == 200 else f"HTTP {response.status_code}: {response.text[:200]}"
    except httpx.HTTPError as exc:
        error = _error(exc)
    ms = round((time.perf_counter() - start) * 1000, 1)
    return ComponentHealth(status="error" if error else "ok", error=error, response_ms=ms)


def _check_disk(settings: Settings) -> ComponentHealth:
    """Free space where results are written: under MIN_FREE_DISK_MB uploads get 507, so it is an error."""
    start = time.perf_counter()
    try:
        free = free_disk_mb(settings.RESULTS_DIR)
        floor = settings.MIN_FREE_DISK_MB
        error = f"{free:.0f} MB free, under MIN_FREE_DISK_MB ({floor} MB)" if free < floor else None
    except OSError as exc:
        error = _error(exc)
    ms = round((time.perf_counter() - start) * 1000, 1)
    return ComponentHealth(status="error" if error else "ok", error=error, response_ms=ms)


async def _check_workers(redis_ok: bool, timeout: float) -> WorkersHealth:
    if not redis_ok:  # the ping travels through Redis: skip it rather than wait on a dead broker
        return WorkersHealth(status="error", error="not checked: Redis is unreachable", response_ms=None)
    try:
        ping = await asyncio.wait_for(run_in_threadpool(monitor.any_worker.get), timeout)
    except TimeoutError:
        return WorkersHealth(status="error", error=f"ping took over {timeout:g} s", response_ms=None)
    return WorkersHealth(
        status="error" if ping.error else "ok",
        error=ping.error,
        response_ms=ping.elapsed_ms,
        answered_by=ping.workers[0] if ping.workers else None,
        checked_at=datetime.fromtimestamp(ping.checked_at, UTC),
    )


@router.get(
    "/health",
    name="health",
    summary="Health of Redis, the ML service and the workers",
    response_model=HealthReport,
    responses={503: {"model": HealthReport, "description": "At least one component does not answer."}},
)
async def health(response: Response, redis: RedisDep, settings: SettingsDep) -> HealthReport:
    """Each component with `ok` or its error and response time; worker pings are cached a few seconds."""
    limit = 3 * settings.MONITOR_TIMEOUT_SECONDS
    redis_health, ml_health = await asyncio.gather(
        _check_redis(redis, limit), run_in_threadpool(_check_ml, settings)
    )
    workers_health = await _check_workers(redis_health.status == "ok", limit)
    disk_health = await run_in_threadpool(_check_disk, settings)
    ok = all(c.status == "ok" for c in (redis_health, ml_health, workers_health, disk_health))
    response.status_code = 200 if ok else 503
    return HealthReport(
        status="ok" if ok else "unavailable",
        redis=redis_health,
        ml_service=ml_health,
        workers=workers_health,
        disk=disk_health,
    )
