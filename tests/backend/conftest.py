"""Fixtures for backend unit tests: the session's real redis-server and settings pointed at temp folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from backend import jobs
from backend.core.config import settings


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = jobs.connect(redis_url)
    yield client
    client.close()


@pytest.fixture
def results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """settings.RESULTS_DIR for this test; not created, so tests can see whether anything creates it."""
    path = tmp_path / "results"
    monkeypatch.setattr(settings, "RESULTS_DIR", path)
    return path
