"""A scene's grey levels, window by window, from statistics fitted once on the whole scene.

ml.radiometry stretches an image by percentiles of all its valid pixels; a scene read in windows must use
one stretch for every window, or seams would show between them. The stretch is fitted on a sample of the
whole scene's processing pixels (a few million, as ml.radiometry samples a decoded image; `Scene.sample`) and
then applied to each window: by a 256- or 65536-entry table for 8- and 16-bit inputs (GRD amplitude), by
the working-domain formula for floats. Nodata pixels get the stretch's fill level, so an all-nodata window
is a constant one, which the tiling skips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.radiometry import Scale, Stretch, _level_values, infer_scale, to_working

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
    offset: int = 0  # the dtype's minimum: level index = value - offset

    @classmethod
    def fit(
        cls, values: np.ndarray, valid: np.ndarray, scale: Scale, nodata: float | None
    ) -> WindowConverter:
        """Fit on a sample of the whole scene (`values` in the file's dtype, `valid` its mask)."""
        if values.dtype.type in _TABLE_TYPES:
            levels = _level_values(values.dtype.str, scale, nodata)
            offset = int(np.iinfo(values.dtype).min)
            index = values.astype(np.int32) - offset if offset else values
            counts = np.bincount(index[valid].ravel(), minlength=levels.size)
            stretch = Stretch.from_counts(levels, counts)
            if stretch is None:
                return cls(scale, nodata, None)
            return cls(scale, nodata, stretch, stretch.apply(levels), np.isfinite(levels), offset)
        working = to_working(values, scale, nodata)
        working[~valid] = np.nan
        return cls(scale, nodata, Stretch.fit(working))

    def convert(self, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 grey levels, bool valid) of one window; nodata pixels hold the fill level."""
        if self.stretch is None:
            return np.zeros(values.shape, np.uint8), np.zeros(values.shape, bool)
        if self.table is not None and self.level_valid is not None:
            index = values.astype(np.int32) - self.offset if self.offset else values
            gray = self.table[index]
            valid = valid & self.level_valid[index]
        else:
            working = to_working(values, self.scale, self.nodata)
            valid = valid & np.isfinite(working)
            gray = self.stretch.apply(working)
        gray[~valid] = self.stretch.fill
        return gray, valid
