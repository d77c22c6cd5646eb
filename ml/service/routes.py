"""The ML service's endpoints: readiness, the served model, and segmentation of one image or a batch.

Handlers that do CPU work run it in the threadpool and never block the event loop; the batch handler also
watches its client and cancels the work when it goes. Decoding and input conversion are ml.imaging and
ml.radiometry, tiling is ml.inference, encoding ml.outputs, the batch answer ml.service.batch, scenes
ml.scene.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from common.wire import (
    MODEL_VERSION_HEADER,
    OIL_FRACTION_HEADER,
    OIL_PIXELS_HEADER,
    ErrorDetail,
    SceneRequest,
)
from ml.cancel import Cancelled
from ml.image_errors import ImageError
from ml.inference import Segmenter, without_nodata
from ml.outputs import bundle, encode_mask_png, encode_overlay_png
from ml.scene.segment import scene_answer
from ml.scene.source import resolve_inside
from ml.service.batch import batch_answer, decode_with_land, model_view
from ml.service.config import Settings
from ml.service.deps import SegmenterDep, SettingsDep, SlotsDep
from ml.service.schemas import Health, ModelCard

log = logging.getLogger("ml.service")
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorDetail} for code in (400, 413, 422, 503)}

router = APIRouter()


@router.get("/health", response_model=Health, responses=ERRORS)
async def health(request: Request, segmenter: SegmenterDep) -> Health:
    """Readiness probe: 200 once the model is loaded."""
    return Health(status="ok", model_version=segmenter.info.version, cancelled=request.app.state.cancelled)


@router.get("/model", response_model=ModelCard, responses=ERRORS)
async def model(segmenter: SegmenterDep, config: SettingsDep) -> ModelCard:
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
        threshold=info.threshold,
        input_scale=config.INPUT_SCALE,
        validation=info.validation,
    )


@router.post(
    "/segment",
    response_class=Response,
    summary="Segment one image",
    responses={
        200: {
            "content": {"image/png": {}, "application/zip": {}},
            "description": "The mask (255 = oil); with overlay=true, a zip of mask.png and overlay.png.",
            "headers": {
                OIL_FRACTION_HEADER: {
                    "description": "share of oil pixels, 0..1",
                    "schema": {"type": "string"},
                },
                OIL_PIXELS_HEADER: {"description": "number of oil pixels", "schema": {"type": "integer"}},
                MODEL_VERSION_HEADER: {
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
    config: SettingsDep,
    slots: SlotsDep,
    overlay: Annotated[bool, Query(description="also return the overlay (grey, oil in red)")] = False,
) -> Response:
    """Oil mask of the uploaded image: same width x height, single channel, 255 = oil, nodata never oil.

    The overlay is rendered here because the image is already decoded here: the caller needs not decode
    it again, and both PNGs come back in one response.
    """
    with slots:
        data = file.file.read()
        try:
            decoded, land = decode_with_land(data, config)
        except ImageError as exc:
            raise HTTPException(status_code=exc.status_code, detail=exc.detail) from exc
        del data
        image = decoded.image
        mask = without_nodata(segmenter.segment(model_view(decoded, land, config)), image.valid)
        oil = int(np.count_nonzero(mask))
        body = encode_mask_png(mask)
        if overlay:
            body = bundle(body, encode_overlay_png(image.gray, mask))
    headers = {
        OIL_FRACTION_HEADER: f"{oil / mask.size:.6f}",
        OIL_PIXELS_HEADER: str(oil),
        MODEL_VERSION_HEADER: segmenter.info.version,
    }
    media_type = "application/zip" if overlay else "image/png"
    return Response(content=body, media_type=media_type, headers=headers)


@router.post(
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
async def segment_batch(
    request: Request,
    files: Annotated[list[UploadFile], File(description="PNG, JPEG or TIFF images")],
    segmenter: SegmenterDep,
    config: SettingsDep,
    slots: SlotsDep,
    overlay: Annotated[bool, Query(description="also return the overlays")] = False,
    geo: Annotated[
        bool, Query(description="also return each image's slicks (GeoJSON) and, if georeferenced, a COG mask")
    ] = False,
) -> Response:
    """Masks of many images at once: what a worker sends for a chord member of small tiles.

    Tiles of consecutive images share model runs, and one request, one multipart parse and one answer
    serve them all. A file that cannot be decoded gets an `error` item with the status and reason
    POST /segment would give it; the others are segmented regardless. If the client goes away, the
    model runs not yet started are dropped (a worker that timed out will send the images again).
    """
    if len(files) > config.MAX_BATCH_IMAGES:
        raise HTTPException(
            413, f"{len(files)} files in one batch, over the limit of {config.MAX_BATCH_IMAGES}"
        )
    cancel = threading.Event()
    watcher = asyncio.create_task(_watch_disconnect(request, cancel))
    try:
        body = await run_in_threadpool(
            batch_answer, files, segmenter, config, slots, overlay=overlay, geo=geo, cancelled=cancel.is_set
        )
    except Cancelled as exc:
        request.app.state.cancelled += 1
        log.info("segmentation cancelled: %s (%d files)", exc, len(files))
        raise HTTPException(503, str(exc)) from exc
    finally:
        watcher.cancel()
    return Response(
        content=body, media_type="application/zip", headers={MODEL_VERSION_HEADER: segmenter.info.version}
    )


@router.post(
    "/segment/scene",
    response_class=Response,
    summary="Segment a scene file in place, window by window",
    responses={
        200: {
            "content": {"application/zip": {}},
            "description": "A batch answer of one image (results.json, 0/mask.png, 0/overlay.png, "
            "0/slicks.geojson, 0/mask.tif when georeferenced), at the processing resolution.",
        },
        **ERRORS,
    },
)
async def segment_scene(
    request: Request, body: SceneRequest, segmenter: SegmenterDep, config: SettingsDep, slots: SlotsDep
) -> Response:
    """Segment a GeoTIFF scene that lies in the shared results folder (ML_SCENE_DIR), never held whole.

    What the worker sends for an image too large to travel in a request body (SCENE_MIN_MB): the path
    of the file it extracted from the upload. The file is read in place by GDAL (GTiff driver only), row
    of tiles by row of tiles, at ML_SCENE_RESOLUTION_M; a path outside the folder is a 400.
    """
    cancel = threading.Event()
    watcher = asyncio.create_task(_watch_disconnect(request, cancel))
    try:
        answer = await run_in_threadpool(_scene, body, segmenter, config, slots, cancel.is_set)
    except ImageError as exc:
        raise HTTPException(status_code=exc.status_code, detail=exc.detail) from exc
    except Cancelled as exc:
        request.app.state.cancelled += 1
        log.info("scene segmentation cancelled: %s", exc)
        raise HTTPException(503, str(exc)) from exc
    finally:
        watcher.cancel()
    return Response(
        content=answer, media_type="application/zip", headers={MODEL_VERSION_HEADER: segmenter.info.version}
    )


def _scene(
    body: SceneRequest,
    segmenter: Segmenter,
    config: Settings,
    slots: threading.BoundedSemaphore,
    cancelled: Callable[[], bool],
) -> bytes:
    path = resolve_inside(config.SCENE_DIR, body.path)
    with slots:
        return scene_answer(path, body.filename, segmenter, config, cancelled)


async def _watch_disconnect(request: Request, cancel: threading.Event, every: float = 0.25) -> None:
    """Set `cancel` once the client has gone (its worker timed out or died)."""
    while not await request.is_disconnected():
        await asyncio.sleep(every)
    cancel.set()
