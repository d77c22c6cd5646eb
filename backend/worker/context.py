"""What the worker's code works with: the job store, the results folder, the ML service and the metrics."""

from __future__ import annotations

from dataclasses import dataclass

from backend.core.config import Settings
from backend.jobs.store import JobStore, connect
from backend.ops.metrics import Metrics
from backend.storage.layout import ResultsDir
from backend.worker.ml_client import MLClient


@dataclass(frozen=True)
class WorkerContext:
    """One per worker process (backend.worker.tasks); tests build their own around a test Redis and folder."""

    store: JobStore
    results: ResultsDir
    ml: MLClient
    metrics: Metrics

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerContext:
        """The Redis client rides out a Redis restart (REDIS_RETRY_SECONDS); redis-py resets its pool after a
        fork, and the ML client makes its own HTTP client in each process."""
        client = connect(settings.redis_url, retry_seconds=settings.REDIS_RETRY_SECONDS)
        results = ResultsDir(settings.RESULTS_DIR)
        results.make_private()
        return cls(
            store=JobStore.from_settings(client, settings),
            results=results,
            ml=MLClient.from_settings(settings),
            metrics=Metrics(client),
        )
