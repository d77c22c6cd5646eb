"""Fixtures for backend unit tests: the session's real redis-server, a job store on it, temp folders, and a
worker context whose ML service is dead."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from backend.jobs.store import JobStore, connect
from backend.ops.metrics import Metrics
from backend.storage.layout import ResultsDir
from backend.worker.context import WorkerContext
from backend.worker.ml_client import MLClient

RECORD_TTL = 3600


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_url)
    yield client
    client.close()


@pytest.fixture
def store(r: redis.Redis) -> JobStore:
    """Job records kept an hour, a job deadline of a minute, archives kept 5 s."""
    return JobStore(r, record_ttl=RECORD_TTL, deadline_s=60, archive_ttl=5)


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """The results folder of this test; not created, so tests can see whether anything creates it."""
    return tmp_path / "results"


@pytest.fixture
def dead_ml(free_port: Callable[[], int]) -> MLClient:
    """Nothing listens there: a test passes only if it never needed the ML service, or handled its absence."""
    return MLClient(f"http://127.0.0.1:{free_port()}", timeout=5.0, retries=1, backoff=0.0)


@pytest.fixture
def ctx(store: JobStore, results_dir: Path, dead_ml: MLClient) -> WorkerContext:
    """What a worker process works with, on the test Redis and folder (tests replace `ml`'s methods)."""
    return WorkerContext(
        store=store, results=ResultsDir(results_dir), ml=dead_ml, metrics=Metrics(store.client)
    )
