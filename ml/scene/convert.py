"""A scene's grey levels, window by window, from statistics fitted once on the whole scene.

ml.radiometry stretches an image by percentiles of all its valid pixels; a scene read in windows must use
one stretch for every window, or seams would show between them. The stretch is fitted on a sample of the
whole scene's processing pixels (a few million, as ml.radiometry samples a decoded image; `Scene.sample`) and
then applied to each window: by a 256- or 65536-entry table for 8- and 16-bit inputs (GRD amplitude), by
the working-domain formula for floats. Nodata pixels get the stretch's fill level, so an all-nodata window
is a constant one, which the tiling skips. With the range trend (ml.scene.range_trend) each column's working
values are first moved by that column's correction, so the stretch is fitted on, and applied to, a scene
whose far range sits at its near range's level; windows then go through the working values (a float table
for 8- and 16-bit inputs), as a per-column grey-level table cannot be one table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.radiometry import (
    BAND_PIXELS,
    STATS_SAMPLES,
    ModelInput,
    Scale,
    Stretch,
    _level_values,
    infer_scale,
    to_working,
)
from ml.scene.land import LandCells
from ml.scene.range_trend import MIN_COLUMNS, range_correction

_TABLE_TYPES = (np.uint8, np.uint16, np.int16)


def resolve_scale(scale: Scale, tags: dict[str, str], sample: np.ndarray) -> Scale:
    """The service's scale, a TIFF's `scale` metadata item when the service says auto, else the dtype rule."""
    tagged = {k.lower(): v.strip().lower() for k, v in tags.items()}.get("scale")
    if scale is Scale.AUTO and tagged is not None and tagged in Scale._value2member_map_:
        return Scale(tagged)
    return infer_scale(sample) if scale is Scale.AUTO else scale


@dataclass(frozen=True)
class WindowConverter:
    """The fitted stretch of one scene; `convert` turns any window of it into grey levels and validity."""

    scale: Scale
    nodata: float | None
    stretch: Stretch | None  # None: the scene holds no valid pixel
    table: np.ndarray | None = None  # uint8 grey level per integer level (8- and 16-bit inputs)
    level_valid: np.ndarray | None = None  # which integer levels hold data
    levels: np.ndarray | None = None  # working value per integer level, with a range correction
    correction: np.ndarray | None = None  # per column, added to the working values (ml.scene.range_trend)

    @classmethod
    def fit(
        cls,
        values: np.ndarray,
        valid: np.ndarray,
        scale: Scale,
        nodata: float | None,
        *,
        range_trend: bool = False,
        land: np.ndarray | None = None,
    ) -> WindowConverter:
        """Fit on a sample of the whole scene (`values` in the file's dtype, `valid` its mask, full rows of
        the scene's width); `range_trend`: its fall across the columns removed first, where it fits.

        Where `land` (bool, the sample's shape) says where the land is, both are fitted on the sea alone,
        as in training, where land was nodata: bright land on a third of a coastal image otherwise takes
        the top of the stretch and shows its sea dark, as a slick."""
        sea = valid if land is None else valid & ~land
        if not sea.any():  # all land (or nothing valid): fitted on every valid pixel as before
            sea = valid
        if range_trend:
            levels = (
                _level_values(values.dtype.str, scale, nodata) if values.dtype.type in _TABLE_TYPES else None
            )
            working = cls._working(values, scale, nodata, levels)
            working[~sea] = np.nan
            correction = range_correction(working)
            if correction is not None:
                working += correction
                stretch = Stretch.fit(working)
                return cls(scale, nodata, stretch, levels=levels, correction=correction)
        if values.dtype.type in _TABLE_TYPES:
            levels = _level_values(values.dtype.str, scale, nodata)
            counts = np.bincount(_level_index(values)[sea].ravel(), minlength=levels.size)
            stretch = Stretch.from_counts(levels, counts)
            if stretch is None:
                return cls(scale, nodata, None)
            return cls(scale, nodata, stretch, stretch.apply(levels), np.isfinite(levels))
        working = to_working(values, scale, nodata)
        working[~sea] = np.nan
        return cls(scale, nodata, Stretch.fit(working))

    def convert(self, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 grey levels, bool valid) of one window; nodata pixels hold the fill level."""
        if self.stretch is None:
            return np.zeros(values.shape, np.uint8), np.zeros(values.shape, bool)
        if self.correction is not None:
            working = self._working(values, self.scale, self.nodata, self.levels)
            working += self.correction
            valid = valid & np.isfinite(working)
            gray = self.stretch.apply(working)
        elif self.table is not None and self.level_valid is not None:
            index = _level_index(values)
            gray = self.table[index]
            valid = valid & self.level_valid[index]
        else:
            working = to_working(values, self.scale, self.nodata)
            valid = valid & np.isfinite(working)
            gray = self.stretch.apply(working)
        gray[~valid] = self.stretch.fill
        return gray, valid

    @staticmethod
    def _working(
        values: np.ndarray, scale: Scale, nodata: float | None, levels: np.ndarray | None
    ) -> np.ndarray:
        """float32 working values (NaN = nodata), by table for 8- and 16-bit inputs: no log per pixel."""
        if levels is None:
            return to_working(values, scale, nodata)
        return np.take(levels, _level_index(values))


def _level_index(values: np.ndarray) -> np.ndarray:
    """Each 8- or 16-bit value's index in its type's table of levels (value minus the type's minimum)."""
    offset = int(np.iinfo(values.dtype).min)
    return values.astype(np.int32) - offset if offset else values


def converted_as_scene(
    band: np.ndarray,
    valid: np.ndarray | None,
    scale: Scale,
    nodata: float | None,
    land: LandCells | None = None,
    *,
    range_trend: bool = True,
) -> ModelInput | None:
    """A whole decoded image (a batch's GeoTIFF) converted as a scene is: its range trend removed and its
    stretch fitted on its sea; None where neither applies (narrow or no trend fitted, and no land known):
    ml.radiometry.convert answers for it then.

    The same file sent in a request body or read as a scene must reach the model alike, and a GeoTIFF
    under the worker's scene size is still tens of kilometres of range."""
    if band.ndim != 2 or band.dtype == np.bool_:
        return None
    if scale is Scale.AUTO:
        scale = infer_scale(band)
    valid = np.ones(band.shape, bool) if valid is None else valid
    step = max(1, band.size // STATS_SAMPLES)  # whole rows, spread down the image
    on_land = None if land is None else land.at_rows(np.arange(0, band.shape[0], step), band.shape[1])
    has_land = on_land is not None and bool(on_land.any())
    trend = range_trend and band.shape[1] >= MIN_COLUMNS
    if not trend and not has_land:
        return None
    converter = WindowConverter.fit(
        band[::step], valid[::step], scale, nodata, range_trend=trend, land=on_land if has_land else None
    )
    if converter.correction is None and not has_land:
        return None
    gray, ok = np.empty(band.shape, np.uint8), np.empty(band.shape, bool)
    rows = max(1, BAND_PIXELS // band.shape[1])
    for r0 in range(0, band.shape[0], rows):
        gray[r0 : r0 + rows], ok[r0 : r0 + rows] = converter.convert(
            band[r0 : r0 + rows], valid[r0 : r0 + rows]
        )
    return ModelInput(gray, None if ok.all() else ok, scale)
