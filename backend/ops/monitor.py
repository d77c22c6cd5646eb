"""What the workers and queues are doing, for /api/health, /api/queues/status and /metrics.

Celery's ping and inspect are broadcasts that wait up to their timeout for replies, so their answers are
cached for MONITOR_CACHE_SECONDS per API process: a health probe every second costs one broadcast per cache
period, and concurrent requests wait for the same broadcast instead of each sending one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import redis
from pydantic import BaseModel

from backend.core.celery_app import celery_app
from backend.core.config import settings

T = TypeVar("T")

# Kombu's Redis transport keeps a queue in one list per priority step: "<name>", "<name>\x06\x163", ...
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


class WorkerPing(BaseModel):
    """Outcome of one ping broadcast: the workers that answered, or the error."""

    workers: list[str] = []
    error: str | None = None
    elapsed_ms: float
    checked_at: float


class WorkerLoad(BaseModel):
    name: str
    active: int
    reserved: int
    scheduled: int


class WorkerLoads(BaseModel):
    workers: list[WorkerLoad] = []
    error: str | None = None
    checked_at: float


class Cached(Generic[T]):
    """One value recomputed at most every `ttl` seconds; callers during a recomputation wait for it."""

    def __init__(self, compute: Callable[[], T], ttl: Callable[[], float]) -> None:
        self._compute = compute
        self._ttl = ttl
        self._lock = threading.Lock()
        self._value: T | None = None
        self._at = -float("inf")

    def get(self) -> T:
        with self._lock:
            if self._value is None or time.monotonic() - self._at >= self._ttl():
                self._value = self._compute()
                self._at = time.monotonic()
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None


def _ping(limit: int | None) -> WorkerPing:
    start = time.perf_counter()
    try:
        replies = celery_app.control.ping(timeout=settings.MONITOR_TIMEOUT_SECONDS, limit=limit)
        names = sorted(name for reply in replies for name in reply)
        error = None if names else f"no worker answered within {settings.MONITOR_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # broker errors of any kind are the answer here, not a crash
        names, error = [], f"{type(exc).__name__}: {exc}"
    elapsed = (time.perf_counter() - start) * 1000
    return WorkerPing(workers=names, error=error, elapsed_ms=round(elapsed, 1), checked_at=time.time())


def _count(replies: dict[str, list[object]] | None, worker: str) -> int:
    return len((replies or {}).get(worker) or [])


def _loads() -> WorkerLoads:
    """Ping all workers (waits the full timeout), then ask exactly those: that returns once all answered."""
    ping = _ping(limit=None)
    if not ping.workers:
        return WorkerLoads(error=ping.error, checked_at=ping.checked_at)
    try:
        inspect = celery_app.control.inspect(
            destination=ping.workers, timeout=settings.MONITOR_TIMEOUT_SECONDS
        )
        active, reserved, scheduled = inspect.active(), inspect.reserved(), inspect.scheduled()
    except Exception as exc:
        return WorkerLoads(error=f"{type(exc).__name__}: {exc}", checked_at=ping.checked_at)
    loads = [
        WorkerLoad(
            name=name,
            active=_count(active, name),
            reserved=_count(reserved, name),
            scheduled=_count(scheduled, name),
        )
        for name in ping.workers
    ]
    return WorkerLoads(workers=loads, checked_at=ping.checked_at)


# Health needs one live worker: limit=1 returns at the first reply instead of waiting out the timeout.
any_worker = Cached(lambda: _ping(limit=1), lambda: settings.MONITOR_CACHE_SECONDS)
worker_loads = Cached(_loads, lambda: settings.MONITOR_CACHE_SECONDS)


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting per queue: the LLEN of each of its Redis lists (one per priority step), summed."""
    names = sorted({celery_app.conf.task_default_queue, *(q.name for q in celery_app.conf.task_queues or ())})
    keys = {name: [name, *(f"{name}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS)] for name in names}
    pipe = client.pipeline(transaction=False)
    for name in names:
        for key in keys[name]:
            pipe.llen(key)
    lengths = iter(pipe.execute())
    return {name: sum(next(lengths) for _ in keys[name]) for name in names}
