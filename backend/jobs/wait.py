"""Waiting for a job to end without polling: the long poll behind GET /api/status/{job_id}?wait=.

A client that polls the status every few hundred milliseconds costs the API, Redis and itself ~2.5 ms of
CPU per request, on the cores the model needs (measured: docs/benchmarks.md). Instead the API subscribes to
the job's state channel (JobStore.transition publishes every change) and answers when the job has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis

from backend.jobs.keys import job_key, state_channel
from backend.jobs.models import ACTIVE_STATES

MAX_WAIT_SECONDS = 60.0


class TooManyWaiters(Exception):
    """Every long-poll slot of this API process is taken (STATUS_MAX_WAITERS)."""


class WaiterSlots:
    """Long polls hold a pub/sub connection each for up to a minute: at most `limit` of them at once, so they
    never take the connections of the pool's other users (a full pool reads as "Redis unreachable")."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.taken >= self.limit:  # one event loop: no lock needed between the check and the increment
            raise TooManyWaiters(self.limit)
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1


async def wait_until_ended(r: Redis, job_id: str, timeout: float) -> None:
    """Return once the job is no longer active (or has no record), or after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(timeout, MAX_WAIT_SECONDS)
    async with r.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(state_channel(job_id))
        # Read after subscribing: a change published in between is then either seen here or received.
        if not _active(await r.hget(job_key(job_id), "state")):
            return
        while (left := deadline - loop.time()) > 0:
            message = await pubsub.get_message(timeout=left)
            if message is not None and not _active(message["data"]):
                return


def _active(state: str | bytes | None) -> bool:
    if isinstance(state, bytes):
        state = state.decode()
    return state in ACTIVE_STATES
