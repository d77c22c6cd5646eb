"""FastAPI app of the ML service: `uvicorn ml.service.main:app --port 8002`.

Builds the app: the model is loaded once in the lifespan and kept on `app.state`, with the settings and
the semaphore that bounds how many requests segment at once (memory and cores are finite). The endpoints
are ml.service.routes and ml.service.land_routes, their dependencies ml.service.deps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from common.priority import lower_process_priority
from ml.imaging import configure_pixel_limit
from ml.service import land_routes
from ml.service.body_limit import BodyLimitMiddleware
from ml.service.config import Settings, settings
from ml.service.routes import router


def create_app(config: Settings = settings, *, lower_priority: bool = False) -> FastAPI:
    """Build the app for one settings object (tests pass their own limits).

    `lower_priority` (the served app only, never a test process) nices the process by config.NICE.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if lower_priority:
            lower_process_priority(config.NICE)
            # The service's own lines (a scene's phases, cancellations) beside uvicorn's, at INFO.
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        configure_pixel_limit(config.MAX_PIXELS)
        app.state.segmenter = await run_in_threadpool(config.segmenter)
        yield
        segmenter, app.state.segmenter = app.state.segmenter, None
        await run_in_threadpool(segmenter.close)

    app = FastAPI(
        title="Oil-spill segmentation (ONNX)",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.state.settings = config
    app.state.segmenter = None
    app.state.slots = threading.BoundedSemaphore(config.MAX_CONCURRENT)
    app.state.cancelled = 0
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(router)
    app.include_router(land_routes.router)
    return app


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with a readable string detail, like every other error of this service."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors]
    return JSONResponse(status_code=422, content={"detail": "; ".join(parts) or "invalid request"})


app = create_app(lower_priority=True)
