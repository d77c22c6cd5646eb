"""How the API answers errors, and the OpenAPI document saying so.

Every error is an ErrorDetail body `{"detail": "..."}`: upload problems (their 4xx, closing the connection),
validation errors as one sentence (not FastAPI's list of error objects), 503 while Redis or the broker is
unreachable, and a logged 500 for anything else. FastAPI documents validation errors as its own
HTTPValidationError list, and no route mentions the 503: document_errors() fixes the OpenAPI document.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError

from backend.upload.errors import UploadError
from backend.upload.stream import upload_error_response

log = logging.getLogger("backend.main")  # the name of the module these handlers came from, for log filters

ERROR_DETAIL = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
UNAVAILABLE = {"description": "The job store (Redis) is unreachable.", "content": ERROR_DETAIL}


def _detail(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)


async def _upload_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UploadError)
    return upload_error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """One readable sentence instead of FastAPI's list of error objects."""
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return _detail(422, f"Invalid request: {problems}")


async def _queue_unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.error("job store unreachable: %s", exc)
    return _detail(503, "The job queue (Redis) is unreachable; try again in a minute.")


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return _detail(500, "Internal server error; it has been logged.")


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document as the handlers really answer (the edit is idempotent)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation["responses"]
            if "422" in responses:
                responses["422"]["content"] = ERROR_DETAIL
            responses.setdefault("503", UNAVAILABLE)
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema


def install(app: FastAPI) -> None:
    """Add the exception handlers to the app."""
    app.add_exception_handler(UploadError, _upload_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for exc_type in (redis.ConnectionError, redis.TimeoutError, OperationalError):
        app.add_exception_handler(exc_type, _queue_unavailable)
    app.add_exception_handler(Exception, _internal_error)
