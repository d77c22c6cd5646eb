"""The ML service's endpoints: readiness, the served model, and segmentation of one image or a batch.

Handlers that do CPU work are plain `def`, so they run in the threadpool and never block the event loop.
Decoding and input conversion are ml.imaging and ml.radiometry, tiling is ml.inference, encoding ml.outputs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from fastapi.responses import Response

from common.wire import (
    MODEL_VERSION_HEADER,
    OIL_FRACTION_HEADER,
    OIL_PIXELS_HEADER,
    BatchItem,
    BatchResult,
    ErrorDetail,
    geo_mask_entry,
    mask_entry,
    overlay_entry,
    slicks_entry,
)
from ml.geo.products import geo_products
from ml.image_errors import ImageError
from ml.imaging import Decoded, decode
from ml.inference import to_mask, without_nodata
from ml.outputs import bundle, bundle_batch, encode_mask_png, encode_overlay_png
from ml.service.deps import SegmenterDep, SettingsDep, SlotsDep
from ml.service.schemas import Health, ModelCard

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorDetail} for code in (400, 413, 422, 503)}

router = APIRouter()


@router.get("/health", response_model=Health, responses=ERRORS)
async def health(segmenter: SegmenterDep) -> Health:
    """Readiness probe: 200 once the model is loaded."""
    return Health(status="ok", model_version=segmenter.info.version)


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


def _decode(data: bytes, config: SettingsDep) -> Decoded:
    return decode(data, config.MAX_PIXELS, config.INPUT_SCALE)


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
            image = _decode(data, config).image
        except ImageError as exc:
            raise HTTPException(status_code=exc.status_code, detail=exc.detail) from exc
        del data
        mask = without_nodata(segmenter.segment(image.gray), image.valid)
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
def segment_batch(
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
    POST /segment would give it; the others are segmented regardless.
    """
    if len(files) > config.MAX_BATCH_IMAGES:
        raise HTTPException(
            413, f"{len(files)} files in one batch, over the limit of {config.MAX_BATCH_IMAGES}"
        )
    items: dict[int, BatchItem] = {}
    pngs: dict[str, bytes] = {}
    decoded: deque[tuple[int, Decoded]] = deque()

    def grays() -> Iterator[np.ndarray]:
        """Decoded one by one as the model reaches them, so a long batch holds few images at once."""
        for index, upload in enumerate(files):
            name = upload.filename or f"file{index}"
            try:
                image = _decode(upload.file.read(), config)
            except ImageError as exc:
                items[index] = BatchItem(
                    index=index, filename=name, status="error", status_code=exc.status_code, detail=exc.detail
                )
                continue
            decoded.append((index, image))
            yield image.image.gray

    with slots:
        for prob in segmenter.probabilities_many(grays()):
            index, item = decoded.popleft()
            image = item.image
            mask = without_nodata(to_mask(prob, segmenter.info.threshold), image.valid)
            height, width = mask.shape
            oil = int(np.count_nonzero(mask))
            name = files[index].filename or f"file{index}"
            products = geo_products(name, item, mask, prob, config.slick_rules) if geo else None
            items[index] = BatchItem(
                index=index,
                filename=name,
                status="ok",
                width=width,
                height=height,
                oil_fraction=oil / mask.size,
                oil_pixels=oil,
                valid_fraction=image.valid_fraction,
                scale=image.scale.value,
                geo=products.info if products else None,
            )
            pngs[mask_entry(index)] = encode_mask_png(mask)
            if overlay:
                pngs[overlay_entry(index)] = encode_overlay_png(image.gray, mask)
            if products is not None:
                pngs[slicks_entry(index)] = products.slicks_geojson
                if products.mask_cog is not None:
                    pngs[geo_mask_entry(index)] = products.mask_cog
    result = BatchResult(model_version=segmenter.info.version, images=[items[i] for i in sorted(items)])
    body = bundle_batch(result.model_dump_json().encode(), pngs)
    return Response(
        content=body, media_type="application/zip", headers={MODEL_VERSION_HEADER: segmenter.info.version}
    )
