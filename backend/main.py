"""The FastAPI application: `uvicorn backend.main:app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError

from backend import jobs
from backend.api.main import api_router
from backend.core.config import settings
from backend.core.logging import configure_logging
from backend.upload_stream import UploadError, upload_error_response

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.redis = jobs.connect(settings.redis_url)
    try:
        yield
    finally:
        app.state.redis.close()


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


def create_app() -> FastAPI:
    configure_logging(settings.LOG_LEVEL, settings.LOG_JSON)
    app = FastAPI(
        title="Oil-spill detection",
        summary="Upload a zip of Sentinel-1 SAR images, get oil masks and overlays back.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(api_router)
    app.add_exception_handler(UploadError, _upload_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for exc_type in (redis.ConnectionError, redis.TimeoutError, OperationalError):
        app.add_exception_handler(exc_type, _queue_unavailable)
    app.add_exception_handler(Exception, _internal_error)
    return app


app = create_app()
