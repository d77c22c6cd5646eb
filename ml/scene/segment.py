"""One scene through the model and into its products, never held whole at full resolution.

The scene is read at its processing resolution (ml.scene.source), its fall across the columns removed
(ml.scene.range_trend) and converted by one stretch (ml.scene.convert), segmented one row of tiles at a
time (ml.scene.strips), tiles all nodata or all land skipped and land shown to the model at the sea's level
(ml.scene.land). The mask and overlay PNGs are deflated as the rows come; what is
kept of the processing grid is the mask, the validity and the probabilities as uint8 (the slicks' confidence):
3 bytes a pixel, 313 MB for a GRD scene at 20 m, 78 MB at 40 m.

Memory, in phases, because the land mask (ml.geo.landmask, ~0.8 GB) and the grids together would not fit
the service's bound: the land mask answers which cells are land, is released, the grids are filled and
vectorised and freed, and only then is the land mask loaded again to drop the slicks on land (3-4 s of one
core; it then stays loaded for the next requests, as on the batch path). The answer is a batch answer of one
image (ml.service.batch's format), so the worker reads it as it reads those.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.wire import BatchItem, BatchResult, geo_mask_entry, mask_entry, overlay_entry, slicks_entry
from ml.cancel import cancellable
from ml.geo.cog import write_mask_cog
from ml.geo.landmask import release_default_landmask
from ml.geo.products import described
from ml.geo.vectorise import vectorise
from ml.inference import Predict, Segmenter, to_mask
from ml.outputs import bundle_batch, mask_png_stream, overlay_index, overlay_png_stream
from ml.scene.convert import WindowConverter, resolve_scale
from ml.scene.land import LandCells, land_cells, land_hider, land_skipper, margin_cells
from ml.scene.source import Scene, open_scene
from ml.scene.strips import TileCounts, strip_probabilities
from ml.service.config import Settings

log = logging.getLogger("ml.service")
STATS_PIXELS = 4_000_000  # the sample the stretch is fitted on (ml.radiometry's sample size)
PROB_SCALE = 255.0


def scene_answer(
    path: Path, filename: str, segmenter: Segmenter, config: Settings, cancelled: Callable[[], bool] | None
) -> bytes:
    """The stored zip of one scene's answer (results.json first); ImageError when the file is refused."""
    files: dict[str, bytes] = {}
    clock = Phases()
    with open_scene(
        path, max_pixels=config.SCENE_MAX_PIXELS, resolution_m=config.SCENE_RESOLUTION_M
    ) as scene:
        land: LandCells | None = None
        margin = 0
        if (config.SKIP_LAND_TILES or config.HIDE_LAND or config.RANGE_TREND) and scene.georef is not None:
            land = land_cells(scene.georef, scene.height, scene.width)
            margin = margin_cells(scene.georef, config.LAND_MARGIN_M, land.cell)
            release_default_landmask()  # not held with the grids (module docstring)
        values, valid = scene.sample(STATS_PIXELS)
        scale = resolve_scale(config.INPUT_SCALE, scene.tags, values)
        on_land = None if land is None else land.at_rows(scene.sample_rows(STATS_PIXELS), scene.width)
        converter = WindowConverter.fit(
            values, valid, scale, scene.nodata, range_trend=config.RANGE_TREND, land=on_land
        )
        del values, valid, on_land
        clock.lap("land tiles")
        skip, hide = None, None
        if land is not None and config.SKIP_LAND_TILES:
            skip = land_skipper(land, segmenter.tile_size)
        if land is not None and config.HIDE_LAND and converter.stretch is not None:
            hide = land_hider(land, int(converter.stretch.fill), segmenter.tile_size, margin)
        mask, valid, prob, counts = _segment(scene, converter, segmenter, skip, hide, cancelled, files)
        clock.lap("model")
    all_valid = bool(valid.all())
    slicks = vectorise(
        mask,
        prob,
        None if all_valid else valid,
        scene.georef,
        min_pixels=config.MIN_SLICK_PIXELS,
        min_area_km2=config.MIN_SLICK_KM2,
        prob_scale=PROB_SCALE,
    )
    del prob
    clock.lap("vectorise")
    if scene.georef is not None:
        files[geo_mask_entry(0)] = write_mask_cog(mask, None if all_valid else valid, scene.georef)
    oil, valid_pixels, pixels = int(np.count_nonzero(mask)), int(np.count_nonzero(valid)), mask.size
    del mask, valid
    return_freed_memory()
    clock.lap("cog")
    products = described(
        filename, scene.georef, scene.georef_reason, scene.acquired, slicks, config.slick_rules, None
    )
    clock.lap("land")
    files[slicks_entry(0)] = products.slicks_geojson
    item = BatchItem(
        index=0,
        filename=filename,
        status="ok",
        width=scene.width,
        height=scene.height,
        oil_fraction=oil / pixels,
        oil_pixels=oil,
        valid_fraction=valid_pixels / pixels,
        scale=scale.value,
        geo=products.info,
        decimation=scene.factor,
        tiles=counts.total,
        tiles_run=counts.run,
    )
    result = BatchResult(model_version=segmenter.info.version, images=[item])
    log.info(
        "scene %s: %dx%d at decimation %d, %d of %d tiles run, %d slicks; seconds: %s",
        filename,
        scene.width,
        scene.height,
        scene.factor,
        counts.run,
        counts.total,
        len(slicks),
        clock,
    )
    return bundle_batch(result.model_dump_json().encode(), files)


class Phases:
    """Seconds per phase of one scene, for its log line (where a scene's minute goes)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append((name, now - self.start))
        self.start = now

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.laps)


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim), so the resident set falls before
    the land mask is loaded: the grids' band-sized temporaries otherwise stay resident as free heap."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _segment(
    scene: Scene,
    converter: WindowConverter,
    segmenter: Segmenter,
    skip: Callable[[int, int], bool] | None,
    hide: Callable[[int, np.ndarray], np.ndarray] | None,
    cancelled: Callable[[], bool] | None,
    files: dict[str, bytes],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, TileCounts]:
    """(mask, valid, uint8 probabilities, tile counts) of the processing grid; its PNGs go into `files`."""
    height, width = scene.height, scene.width
    valid = np.empty((height, width), bool)
    mask = np.empty((height, width), np.uint8)
    prob = np.empty((height, width), np.uint8)
    mask_png, overlay_png = mask_png_stream(width, height), overlay_png_stream(width, height)
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
        tile=segmenter.tile_size,
        overlap=segmenter.overlap,
        batch_size=segmenter.batch_size,
        skip=skip,
        hide=hide,
        counts=counts,
    )
    for band in bands:
        rows = slice(band.row0, band.row0 + band.gray.shape[0])
        band_mask = to_mask(band.prob, segmenter.info.threshold)
        band_mask[~band.valid] = 0
        mask[rows], valid[rows] = band_mask, band.valid
        mask_png.add(band_mask)
        overlay_png.add(overlay_index(band.gray, band_mask))
        np.rint(band.prob * np.float32(PROB_SCALE), out=band.prob)
        prob[rows] = band.prob
    files[mask_entry(0)] = mask_png.finish()
    files[overlay_entry(0)] = overlay_png.finish()
    return mask, valid, prob, counts
