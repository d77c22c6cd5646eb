"""The answer to POST /segment/batch: every file decoded, segmented in shared model runs, and zipped.

Plain code over the service's parts (no FastAPI): ml.service.routes runs it in the threadpool and cancels it
when the client goes away.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
import rasterio
from fastapi import UploadFile

from common.wire import BatchItem, BatchResult, geo_mask_entry, mask_entry, overlay_entry, slicks_entry
from ml.geo.georef import Georef
from ml.geo.products import geo_products
from ml.image_errors import ImageError
from ml.imaging import Decoded, decode
from ml.inference import Segmenter, to_mask, without_nodata
from ml.outputs import bundle_batch, encode_mask_png, encode_overlay_png
from ml.scene.land import LandCells, land_cells, land_hidden
from ml.service.config import Settings


def decode_upload(data: bytes, config: Settings) -> Decoded:
    return decode_with_land(data, config)[0]


def decode_with_land(data: bytes, config: Settings) -> tuple[Decoded, LandCells | None]:
    """The image, and its land cells where its range trend needed them (land hiding reuses them)."""
    found: list[LandCells] = []

    def land_of(georef: Georef, height: int, width: int) -> LandCells:
        found.append(land_cells(georef, height, width))
        return found[0]

    image = decode(
        data,
        config.MAX_PIXELS,
        config.INPUT_SCALE,
        config.TILE_SIZE,
        range_trend=config.RANGE_TREND,
        land_of=land_of,
    )
    return image, found[0] if found else None


def model_view(image: Decoded, land: LandCells | None, config: Settings) -> np.ndarray:
    """The grey levels the model is run on: a georeferenced image's land hidden (ml.scene.land), whatever
    `geo` asks for and whichever endpoint was called, so one image gets one mask; overlays keep the land."""
    if config.HIDE_LAND and image.georef is not None:
        return land_hidden(
            image.image.gray, image.georef, config.TILE_SIZE, land=land, margin_m=config.LAND_MARGIN_M
        )
    return image.image.gray


def batch_answer(
    files: list[UploadFile],
    segmenter: Segmenter,
    config: Settings,
    slots: threading.BoundedSemaphore,
    *,
    overlay: bool,
    geo: bool,
    cancelled: Callable[[], bool] | None = None,
) -> bytes:
    """The stored zip of a batch answer (results.json first); ml.cancel.Cancelled once `cancelled()`."""
    items: dict[int, BatchItem] = {}
    pngs: dict[str, bytes] = {}
    decoded: deque[tuple[int, Decoded]] = deque()

    def grays() -> Iterator[np.ndarray]:
        """Decoded one by one as the model reaches them, so a long batch holds few images at once."""
        for index, upload in enumerate(files):
            name = upload.filename or f"file{index}"
            try:
                image, land = decode_with_land(upload.file.read(), config)
            except ImageError as exc:
                items[index] = BatchItem(
                    index=index, filename=name, status="error", status_code=exc.status_code, detail=exc.detail
                )
                continue
            decoded.append((index, image))
            yield model_view(image, land, config)

    # One GDAL environment for the whole request: each rasterio call outside one sets up its own (~0.15 ms).
    with slots, rasterio.Env():
        for prob in segmenter.probabilities_many(grays(), cancelled):
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
    return bundle_batch(result.model_dump_json().encode(), pngs)
