"""FastAPI app of the ML service: `uvicorn ml.service.main:app --port 8002`.

Thin on purpose: decoding lives in ml.imaging, tiling and the ONNX session in ml.inference. The model is
loaded once in the lifespan; handlers that do CPU work are plain `def`, so they run in the threadpool and
never block the event loop, and a semaphore bounds how many run at once (memory and cores are finite).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from ml.imaging import ImageError, configure_pixel_limit, decode_image
from ml.inference import THRESHOLD, Segmenter
from ml.outputs import bundle, bundle_batch, encode_mask_png, encode_overlay_png
from ml.priority import lower_process_priority
from ml.service.body_limit import BodyLimitMiddleware
from ml.service.config import Settings, settings
from ml.service.schemas import BatchItem, BatchResult, ErrorDetail, Health, ModelCard

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorDetail} for code in (400, 413, 422, 503)}


def create_app(config: Settings = settings, *, lower_priority: bool = False) -> FastAPI:
    """Build the app for one settings object (tests pass their own limits).

    `lower_priority` (the served app only, never a test process) nices the process by config.NICE.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if lower_priority:
            lower_process_priority(config.NICE)
        configure_pixel_limit(config.MAX_PIXELS)
        app.state.segmenter = await run_in_threadpool(
            Segmenter,
            config.MODEL_PATH,
            config.THREADS,
            config.TILE_SIZE,
            config.TILE_OVERLAP,
            config.BATCH_SIZE,
            config.ALLOW_SPINNING,
            config.runners,
        )
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
    app.add_exception_handler(RequestValidationError, _validation_error)
    _add_routes(app)
    return app


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with a readable string detail, like every other error of this service."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors]
    return JSONResponse(status_code=422, content={"detail": "; ".join(parts) or "invalid request"})


async def get_segmenter(request: Request) -> Segmenter:
    """The loaded model, or 503 while it is not (yet) loaded."""
    segmenter: Segmenter | None = request.app.state.segmenter
    if segmenter is None:
        raise HTTPException(status_code=503, detail="model not loaded")
    return segmenter


SegmenterDep = Annotated[Segmenter, Depends(get_segmenter)]


def _add_routes(app: FastAPI) -> None:
    config: Settings = app.state.settings

    @app.get("/health", response_model=Health, responses=ERRORS)
    async def health(segmenter: SegmenterDep) -> Health:
        """Readiness probe: 200 once the model is loaded."""
        return Health(status="ok", model_version=segmenter.info.version)

    @app.get("/model", response_model=ModelCard, responses=ERRORS)
    async def model(segmenter: SegmenterDep) -> ModelCard:
        """Identify the served weights (sha256) and their validation figures."""
        info = segmenter.info
        return ModelCard(
            name=info.name,
            version=info.version,
            sha256=info.sha256,
            epoch=info.epoch,
            tile_size=segmenter.tile_size,
            tile_overlap=segmenter.overlap,
            batch_size=segmenter.batch_size,
            threads=segmenter.threads,
            runners=segmenter.runners.count,
            threshold=THRESHOLD,
            validation=info.validation,
        )

    @app.post(
        "/segment",
        response_class=Response,
        summary="Segment one image",
        responses={
            200: {
                "content": {"image/png": {}, "application/zip": {}},
                "description": "The mask (255 = oil); with overlay=true, a zip of mask.png and overlay.png.",
                "headers": {
                    "X-Oil-Fraction": {
                        "description": "share of oil pixels, 0..1",
                        "schema": {"type": "string"},
                    },
                    "X-Oil-Pixels": {"description": "number of oil pixels", "schema": {"type": "integer"}},
                    "X-Model-Version": {
                        "description": "the weights that made the mask",
                        "schema": {"type": "string"},
                    },
                },
            },
            **ERRORS,
        },
    )
    def segment(
        file: Annotated[UploadFile, File(description="one PNG, JPEG or TIFF image")],
        segmenter: SegmenterDep,
        overlay: Annotated[bool, Query(description="also return the overlay (grey RGB, oil in red)")] = False,
    ) -> Response:
        """Oil mask of the uploaded image: same width x height, single channel, 255 = oil.

        The overlay is rendered here because the image is already decoded here: the caller needs not decode
        it again, and both PNGs come back in one response.
        """
        with app.state.slots:
            data = file.file.read()
            try:
                gray = decode_image(data, config.MAX_PIXELS)
            except ImageError as exc:
                raise HTTPException(status_code=exc.status_code, detail=exc.detail) from exc
            del data
            mask = segmenter.segment(gray)
            oil = int(np.count_nonzero(mask))
            body = encode_mask_png(mask)
            if overlay:
                body = bundle(body, encode_overlay_png(gray, mask))
        headers = {
            "X-Oil-Fraction": f"{oil / mask.size:.6f}",
            "X-Oil-Pixels": str(oil),
            "X-Model-Version": segmenter.info.version,
        }
        media_type = "application/zip" if overlay else "image/png"
        return Response(content=body, media_type=media_type, headers=headers)

    @app.post(
        "/segment/batch",
        response_class=Response,
        summary="Segment several images in one request",
        responses={
            200: {
                "content": {"application/zip": {}},
                "description": "A stored zip: `results.json` (a BatchResult: one item per file, in "
                "order) and `<index>/mask.png` (+ `<index>/overlay.png` with overlay=true) for every image "
                "that worked.",
            },
            **ERRORS,
        },
    )
    def segment_batch(
        files: Annotated[list[UploadFile], File(description="PNG, JPEG or TIFF images")],
        segmenter: SegmenterDep,
        overlay: Annotated[bool, Query(description="also return the overlays")] = False,
    ) -> Response:
        """Masks of many images at once: what a worker sends for a chord member of small tiles.

        Tiles of consecutive images share model runs, and one request, one multipart parse and one answer
        serve them all. A file that cannot be decoded gets an `error` item with the status and reason
        POST /segment would give it; the others are segmented regardless.
        """
        if len(files) > config.MAX_BATCH_IMAGES:
            raise HTTPException(
                413, f"{len(files)} files in one batch, over the limit of {config.MAX_BATCH_IMAGES}"
            )
        items: dict[int, BatchItem] = {}
        pngs: dict[str, bytes] = {}
        decoded: deque[tuple[int, np.ndarray]] = deque()

        def grays() -> Iterator[np.ndarray]:
            """Decoded one by one as the model reaches them, so a long batch holds few images at once."""
            for index, upload in enumerate(files):
                name = upload.filename or f"file{index}"
                try:
                    gray = decode_image(upload.file.read(), config.MAX_PIXELS)
                except ImageError as exc:
                    items[index] = BatchItem(
                        index=index,
                        filename=name,
                        status="error",
                        status_code=exc.status_code,
                        detail=exc.detail,
                    )
                    continue
                decoded.append((index, gray))
                yield gray

        with app.state.slots:
            for mask in segmenter.segment_many(grays()):
                index, gray = decoded.popleft()
                height, width = mask.shape
                oil = int(np.count_nonzero(mask))
                items[index] = BatchItem(
                    index=index,
                    filename=files[index].filename or f"file{index}",
                    status="ok",
                    width=width,
                    height=height,
                    oil_fraction=oil / mask.size,
                    oil_pixels=oil,
                )
                pngs[f"{index}/mask.png"] = encode_mask_png(mask)
                if overlay:
                    pngs[f"{index}/overlay.png"] = encode_overlay_png(gray, mask)
        result = BatchResult(model_version=segmenter.info.version, images=[items[i] for i in sorted(items)])
        body = bundle_batch(result.model_dump_json().encode(), pngs)
        headers = {"X-Model-Version": segmenter.info.version}
        return Response(content=body, media_type="application/zip", headers=headers)


app = create_app(lower_priority=True)
