"""One scene through the model and into its products, never held whole at full resolution.

The scene is read at its processing resolution (ml.scene.source), converted by one stretch
(ml.scene.convert), segmented one row of tiles at a time (ml.scene.strips), tiles all nodata or all land
skipped (ml.scene.land). What is kept is the processing-resolution grid: grey levels (the overlay), validity,
the mask and the probabilities as uint8 (the slicks' confidence): 4 bytes a pixel, 104 MB for a GRD scene at
40 m. The answer is a batch answer of one image (ml.service.batch's format), so the worker reads it as it
reads those.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.wire import BatchItem, BatchResult, geo_mask_entry, mask_entry, overlay_entry, slicks_entry
from ml.cancel import cancellable
from ml.geo.products import geo_products
from ml.imaging import Decoded
from ml.inference import Predict, Segmenter, to_mask
from ml.outputs import bundle_batch, encode_mask_png, encode_overlay_png
from ml.radiometry import ModelInput
from ml.scene.convert import WindowConverter, resolve_scale
from ml.scene.land import land_skipper
from ml.scene.source import Scene, open_scene
from ml.scene.strips import TileCounts, strip_probabilities
from ml.service.config import Settings

STATS_PIXELS = 4_000_000  # the decimated read the stretch is fitted on (ml.radiometry's sample size)
PROB_SCALE = 255.0


def scene_answer(
    path: Path, filename: str, segmenter: Segmenter, config: Settings, cancelled: Callable[[], bool] | None
) -> bytes:
    """The stored zip of one scene's answer (results.json first); ImageError when the file is refused."""
    with open_scene(
        path, max_pixels=config.SCENE_MAX_PIXELS, resolution_m=config.SCENE_RESOLUTION_M
    ) as scene:
        values, valid = scene.overview(STATS_PIXELS)
        scale = resolve_scale(config.INPUT_SCALE, scene.tags, values)
        converter = WindowConverter.fit(values, valid, scale, scene.nodata)
        del values, valid
        grid = _segment(scene, converter, segmenter, config, cancelled)
    gray, valid, mask, prob, counts = grid
    all_valid = bool(valid.all())
    image = ModelInput(gray, None if all_valid else valid, scale)
    decoded = Decoded(image, scene.georef, scene.georef_reason, scene.acquired)
    products = geo_products(filename, decoded, mask, prob, config.slick_rules, prob_scale=PROB_SCALE)
    oil = int(np.count_nonzero(mask))
    item = BatchItem(
        index=0,
        filename=filename,
        status="ok",
        width=scene.width,
        height=scene.height,
        oil_fraction=oil / mask.size,
        oil_pixels=oil,
        valid_fraction=image.valid_fraction,
        scale=scale.value,
        geo=products.info,
        decimation=scene.factor,
        tiles=counts.total,
        tiles_run=counts.run,
    )
    files = {mask_entry(0): encode_mask_png(mask), overlay_entry(0): encode_overlay_png(gray, mask)}
    files[slicks_entry(0)] = products.slicks_geojson
    if products.mask_cog is not None:
        files[geo_mask_entry(0)] = products.mask_cog
    result = BatchResult(model_version=segmenter.info.version, images=[item])
    return bundle_batch(result.model_dump_json().encode(), files)


def _segment(
    scene: Scene,
    converter: WindowConverter,
    segmenter: Segmenter,
    config: Settings,
    cancelled: Callable[[], bool] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, TileCounts]:
    """(grey, valid, mask, uint8 probabilities, tile counts) of the scene's processing grid."""
    height, width = scene.height, scene.width
    gray = np.empty((height, width), np.uint8)
    valid = np.empty((height, width), bool)
    mask = np.empty((height, width), np.uint8)
    prob = np.empty((height, width), np.uint8)
    tile, overlap = segmenter.tile_size, segmenter.overlap
    skip = land_skipper(scene.georef, height, width, tile, overlap) if config.SKIP_LAND_TILES else None
    predict: Predict = segmenter.submitter()
    if cancelled is not None:
        predict = cancellable(predict, cancelled)

    def read(row0: int, row1: int) -> tuple[np.ndarray, np.ndarray]:
        return converter.convert(*scene.read(row0, row1))

    counts = TileCounts()
    bands = strip_probabilities(
        read,
        height,
        width,
        predict,
        tile=tile,
        overlap=overlap,
        batch_size=segmenter.batch_size,
        skip=skip,
        counts=counts,
    )
    for band in bands:
        rows = slice(band.row0, band.row0 + band.gray.shape[0])
        gray[rows], valid[rows] = band.gray, band.valid
        band_mask = to_mask(band.prob, segmenter.info.threshold)
        band_mask[~band.valid] = 0
        mask[rows] = band_mask
        np.rint(band.prob * np.float32(PROB_SCALE), out=band.prob)
        prob[rows] = band.prob
    return gray, valid, mask, prob, counts
