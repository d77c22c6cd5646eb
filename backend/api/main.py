"""The FastAPI application: `uvicorn backend.api.main:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from backend.api import docs, errors, ops_auth
from backend.api.routes import api_router, map, metrics
from backend.core.config import settings
from backend.core.logging import configure_logging
from backend.jobs.store import connect
from backend.storage.layout import ResultsDir

API_REDIS_TIMEOUT_SECONDS = 1.0
WEB_DIR = Path(__file__).resolve().parents[1] / "web"
# The page loads only its own script, style and images, and may not be framed by another site.
WEB_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


class OilSpillAPI(FastAPI):
    """FastAPI whose OpenAPI document describes the error bodies the handlers of backend.api.errors answer."""

    def openapi(self) -> dict[str, Any]:
        return errors.document_errors(super().openapi())


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    ops_auth.operator_token(settings)  # without OPS_TOKEN: the token file is written (and logged) at start
    ResultsDir(settings.RESULTS_DIR).make_private()  # 0700 folders, 0600 files: their names are download keys
    # A Redis that stops answering (paused, overloaded) costs a request ~1 s, then 503, not a hung upload.
    app.state.redis = connect(settings.redis_url, socket_timeout=API_REDIS_TIMEOUT_SECONDS)
    # For the long poll of GET /api/status?wait= only: it waits on pub/sub without holding a thread. Each
    # waiter (at most STATUS_MAX_WAITERS) holds one connection and briefly a second.
    app.state.redis_async = redis.asyncio.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=3,
        max_connections=2 * settings.STATUS_MAX_WAITERS + 20,
    )
    try:
        yield
    finally:
        app.state.redis.close()
        await app.state.redis_async.aclose()


def web_page() -> FileResponse:
    """The analysts' page: upload a zip, watch progress and overlays, download the archive."""
    headers = WEB_HEADERS
    tiles = map.tile_source(settings.MAP_TILE_URL)
    if tiles:  # the tiles of the operator's basemap (MAP_TILE_URL), from that one server only
        csp = headers["Content-Security-Policy"].replace(
            "img-src 'self' data: blob:", f"img-src 'self' data: blob: {tiles}"
        )
        headers = {**headers, "Content-Security-Policy": csp}
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=headers)


def create_app() -> FastAPI:
    configure_logging(settings.LOG_LEVEL, settings.LOG_JSON)
    app = OilSpillAPI(
        title="Oil-spill detection",
        summary="Upload a zip of Sentinel-1 SAR images, get oil masks and overlays back.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by backend.api.docs from vendored files, so it works offline
        redoc_url=None,
    )
    app.include_router(api_router)
    app.include_router(metrics.router)
    app.add_api_route("/", web_page, methods=["GET"], include_in_schema=False)
    docs.install(app)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    errors.install(app)
    return app


app = create_app()
