"""Log setup shared by the API and the worker: one line per job event, plain text or JSON (LOG_JSON)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else was passed through `extra=` and belongs in the line.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# uvicorn's own handlers (installed before our app is imported) bypass the root logger: take them over.
# "color_message" is the ANSI-coloured copy of the message uvicorn passes as an extra.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_IGNORED_EXTRAS = frozenset({"color_message"})

logger = logging.getLogger("backend.jobs")
# User hashes and job ids (32 lowercase hex) are download keys, or lead to them: never in an access log line.
_TOKEN = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


class RedactTokens(logging.Filter):
    """Replace the tokens in uvicorn's access lines (request paths) with `<token>`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            record.args = tuple(_TOKEN.sub("<token>", a) if isinstance(a, str) else a for a in record.args)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _STANDARD_ATTRS and k not in _IGNORED_EXTRAS and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so log shippers need no parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable line with the structured extras appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        # event and job_id are already in the message text.
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items() if k not in ("event", "job_id"))
        return f"{text} {extras}" if extras else text


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Replace the root handlers with one stderr handler in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.setLevel(level.upper())  # also for loggers with their own level (uvicorn's are INFO)
    handler.addFilter(RedactTokens())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _UVICORN_LOGGERS:
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def job_event(event: str, job_id: str, **fields: Any) -> None:
    """Log one job event (uploaded, started, image_done, image_failed, archived, expired, deleted, ...).

    The fields travel as record extras, so the formatter prints them (text) or keys them (JSON) once.
    Field names must not shadow LogRecord attributes ("name", "msg", ...): use "image" for an image name.
    """
    logger.info("job %s %s", job_id, event, extra={"event": event, "job_id": job_id, **fields})
