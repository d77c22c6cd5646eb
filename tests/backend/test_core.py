from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from backend.core.config import Settings
from backend.core.logging import JsonFormatter, TextFormatter, job_event


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("ARCHIVE_TTL_SECONDS=42\nMAX_IMAGES=7\nEMBEDDED_REDIS_PORT=6399\nUNRELATED=1\n")
    monkeypatch.setenv("MAX_IMAGES", "9")
    monkeypatch.delenv("ARCHIVE_TTL_SECONDS", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("EMBEDDED_REDIS_PORT", raising=False)
    config = Settings(_env_file=dotenv)
    assert (config.ARCHIVE_TTL_SECONDS, config.MAX_IMAGES) == (42, 9)
    assert config.REDIS_URL is None and config.redis_url == "redis://127.0.0.1:6399/0"
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:1/2")
    assert Settings(_env_file=dotenv).redis_url == "redis://elsewhere:1/2"


def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_TTL_SECONDS", "0")
    with pytest.raises(ValueError, match="ARCHIVE_TTL_SECONDS"):
        Settings(_env_file=None)


def capture(formatter: logging.Formatter, caplog: pytest.LogCaptureFixture) -> str:
    with caplog.at_level(logging.INFO, logger="backend.jobs"):
        job_event("image_failed", "f" * 32, image="a/x.png", error="boom")
    (record,) = [r for r in caplog.records if r.name == "backend.jobs"]
    return formatter.format(record)


def test_job_events_as_json_lines(caplog: pytest.LogCaptureFixture) -> None:
    line = json.loads(capture(JsonFormatter(), caplog))
    assert line["event"] == "image_failed" and line["job_id"] == "f" * 32
    assert line["image"] == "a/x.png" and line["error"] == "boom" and line["level"] == "INFO"
    assert line["message"] == f"job {'f' * 32} image_failed"


def test_job_events_as_text(caplog: pytest.LogCaptureFixture) -> None:
    text = capture(TextFormatter(), caplog)
    assert text.endswith(f"job {'f' * 32} image_failed image=a/x.png error=boom")
