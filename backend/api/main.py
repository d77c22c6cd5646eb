"""The FastAPI application: `uvicorn backend.main:app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis
import redis.asyncio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from kombu.exceptions import OperationalError

from backend import jobs
from backend.api import openapi
from backend.api.main import api_router
from backend.api.routes import metrics
from backend.core.config import settings
from backend.core.logging import configure_logging
from backend.upload_stream import UploadError, upload_error_response

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
# The page loads only its own script, style and images, and may not be framed by another site.
WEB_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.redis = jobs.connect(settings.redis_url)
    # For the long poll of GET /api/status?wait= only: it waits on pub/sub without holding a thread.
    app.state.redis_async = redis.asyncio.Redis.from_url(
        settings.redis_url, decode_responses=True, socket_connect_timeout=3
    )
    try:
        yield
    finally:
        app.state.redis.close()
        await app.state.redis_async.aclose()


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


def web_page() -> FileResponse:
    """The analysts' page: upload a zip, watch progress and overlays, download the archive."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=WEB_HEADERS)


def create_app() -> FastAPI:
    configure_logging(settings.LOG_LEVEL, settings.LOG_JSON)
    app = FastAPI(
        title="Oil-spill detection",
        summary="Upload a zip of Sentinel-1 SAR images, get oil masks and overlays back.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(api_router)
    app.include_router(metrics.router)
    openapi.install(app)
    app.add_api_route("/", web_page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    app.add_exception_handler(UploadError, _upload_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for exc_type in (redis.ConnectionError, redis.TimeoutError, OperationalError):
        app.add_exception_handler(exc_type, _queue_unavailable)
    app.add_exception_handler(Exception, _internal_error)
    return app


app = create_app()
