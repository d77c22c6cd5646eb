"""Input conversion: whatever processor wrote the image, the model sees one kind of picture.

Analysts bring 8-bit renderings from many tools, GRD amplitude numbers (uint16) and calibrated sigma0
(float32, linear power or dB). Each is first brought into a *working domain*, then stretched by robust
percentiles of the whole image's valid pixels into the uint8 grey levels the model and the overlays use:

| input dtype                  | read as (`Scale.AUTO`)   | working domain  | nodata            |
|------------------------------|--------------------------|-----------------|-------------------|
| uint8 (and 1-bit)            | `grey`: a rendering      | the grey level  | `nodata` only     |
| uint16, int16, uint32, int32 | `amplitude`: GRD numbers | 20·log10(DN) dB | DN <= 0           |
| float, some value negative   | `db`: sigma0 in dB       | the dB value    | NaN, inf, <= -100 |
| float, none negative         | `power`: linear sigma0   | 10·log10(x) dB  | NaN, inf, <= 0    |

`nodata` (a TIFF's GDAL_NODATA tag, or the caller's) and a transparent alpha channel are excluded as well.
A scale can be forced (the ML service's `ML_INPUT_SCALE`, or a TIFF's GDAL_METADATA item `scale`) when the
rule guesses wrong, e.g. a float rendering of grey levels.

Why dB, then percentiles: a gain in linear units (another calibration constant) is an offset in dB and an
8-bit tool's stretch is an affine map of grey levels, so an affine normalisation by the image's own statistics
removes both exactly; what it cannot remove (gamma, log/linear renderings) the model learns from augmentation
(ml.training.augment). The statistics come from the whole image, once, never per tile, so the tiles of one
scene agree and no seams appear; a strided sample keeps that cheap on a 400-Mpixel scene.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.0
DB_NODATA_BELOW = -100.0  # dB values at or below this are fill values (-9999 and the like), not radar returns
STATS_SAMPLES = 4_000_000  # at most this many pixels (a regular grid) feed the percentiles
BAND_PIXELS = 1 << 22  # float images are converted this many pixels at a time (bounded temporaries)


class Scale(StrEnum):
    """How an image's numbers are read; `auto` applies the dtype rule in the module docstring."""

    AUTO = "auto"
    GREY = "grey"
    AMPLITUDE = "amplitude"
    POWER = "power"
    DB = "db"


@dataclass(frozen=True)
class ModelInput:
    """The model's view of one image: normalised grey levels, which pixels hold data, and how it was read."""

    gray: np.ndarray  # uint8 HxW; nodata pixels hold the median's grey level (they look like open sea)
    valid: np.ndarray | None  # bool HxW, False = nodata (never oil); None when every pixel is valid
    scale: Scale

    @property
    def valid_fraction(self) -> float:
        return 1.0 if self.valid is None else float(np.count_nonzero(self.valid)) / max(1, self.valid.size)


def infer_scale(image: np.ndarray) -> Scale:
    """The dtype rule; floats are dB when any finite value is negative (power cannot be)."""
    if image.dtype == np.uint8 or image.dtype == np.bool_:
        return Scale.GREY
    if np.issubdtype(image.dtype, np.integer):
        return Scale.AMPLITUDE
    if np.issubdtype(image.dtype, np.floating):
        sample = _sample(image)
        finite = sample[np.isfinite(sample)]
        # A fill value such as -9999 alone does not make an image dB: look past it.
        return Scale.DB if np.any((finite < 0) & (finite > DB_NODATA_BELOW)) else Scale.POWER
    raise ValueError(f"unsupported pixel type {image.dtype}")


def _sample(image: np.ndarray, limit: int = STATS_SAMPLES) -> np.ndarray:
    """A regular grid of at most about `limit` pixels (a view, so nothing big is copied)."""
    step = max(1, int(np.ceil(np.sqrt(image.size / limit))))
    return image[::step, ::step]


def to_working(values: np.ndarray, scale: Scale, nodata: float | None = None) -> np.ndarray:
    """float32 values in the working domain (grey level or dB); NaN where there is no data."""
    x = values.astype(np.float32, copy=True)
    invalid = ~np.isfinite(x)
    if nodata is not None and np.isfinite(nodata):
        invalid |= values == nodata
    if scale is Scale.GREY:
        pass
    elif scale is Scale.AMPLITUDE:
        invalid |= x <= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            x = (20.0 * np.log10(x)).astype(np.float32, copy=False)
    elif scale is Scale.POWER:
        invalid |= x <= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            x = (10.0 * np.log10(x)).astype(np.float32, copy=False)
    elif scale is Scale.DB:
        invalid |= x <= DB_NODATA_BELOW
    else:
        raise ValueError(f"scale must be resolved before conversion, got {scale}")
    x[invalid] = np.nan
    return x


@dataclass(frozen=True)
class Stretch:
    """The affine map from the working domain to grey levels 0..255, fixed once per image."""

    low: float
    high: float
    fill: np.uint8  # grey level given to nodata pixels

    @classmethod
    def fit(cls, working_sample: np.ndarray) -> Stretch | None:
        """Percentiles of the valid values; None when there is none. A constant image maps to mid-grey."""
        valid = working_sample[np.isfinite(working_sample)]
        if valid.size == 0:
            return None
        low, median, high = np.percentile(valid, [LOW_PERCENTILE, 50.0, HIGH_PERCENTILE])
        return cls._through(float(low), float(median), float(high))

    @classmethod
    def from_counts(cls, level_values: np.ndarray, counts: np.ndarray) -> Stretch | None:
        """The same percentiles from a histogram of integer levels whose working values rise with the level.

        Equal to `fit` on the pixels themselves (NumPy's linear interpolation between closest ranks), at the
        cost of one bincount instead of a partition of every pixel: 8- and 16-bit images, the common case.
        """
        keep = np.isfinite(level_values) & (counts > 0)
        values, cumulative = level_values[keep], np.cumsum(counts[keep])
        if values.size == 0:
            return None
        n = int(cumulative[-1])

        def percentile(q: float) -> float:
            rank = q / 100 * (n - 1)
            below = int(np.floor(rank))
            lo = values[np.searchsorted(cumulative, below, side="right")]
            hi = values[np.searchsorted(cumulative, min(below + 1, n - 1), side="right")]
            return float(lo + (hi - lo) * (rank - below))

        return cls._through(percentile(LOW_PERCENTILE), percentile(50.0), percentile(HIGH_PERCENTILE))

    @classmethod
    def _through(cls, low: float, median: float, high: float) -> Stretch:
        stretch = cls(low, high, np.uint8(128))
        return cls(low, high, stretch.apply(np.array([median], np.float32))[0])

    def apply(self, working: np.ndarray) -> np.ndarray:
        """uint8 grey levels (rounded, clipped); NaN becomes the fill."""
        span = self.high - self.low
        missing = np.isnan(working)
        if span <= 0:
            out = np.full(working.shape, 128, np.uint8)
        else:
            scaled = (working - np.float32(self.low)) * np.float32(255.0 / span)
            np.clip(scaled, 0, 255, out=scaled)
            scaled[missing] = 0
            out = np.rint(scaled, out=scaled).astype(np.uint8)
        out[missing] = self.fill
        return out


def convert(
    image: np.ndarray,
    scale: Scale = Scale.AUTO,
    nodata: float | None = None,
    mask: np.ndarray | None = None,
) -> ModelInput:
    """One HxW band of any supported dtype -> the model's uint8 grey levels plus the valid-pixel mask.

    `mask` (bool HxW, False = no data, e.g. a transparent alpha channel) adds to the nodata rule.
    """
    if image.ndim != 2:
        raise ValueError(f"expected one band (HxW), got shape {image.shape}")
    if mask is not None and mask.shape != image.shape:
        raise ValueError(f"mask {mask.shape} and image {image.shape} differ in shape")
    if image.dtype == np.bool_:
        image = image.view(np.uint8) * np.uint8(255)
    if scale is Scale.AUTO:
        scale = infer_scale(image)
    if image.dtype in (np.uint8, np.uint16, np.int16):
        return _convert_by_table(image, scale, nodata, mask)
    sample = to_working(_sample(image), scale, nodata)
    if mask is not None:
        sample[~_sample(mask)] = np.nan
    stretch = Stretch.fit(sample)
    if stretch is None:  # nothing but nodata: an answer (no oil anywhere), not an error
        return _all_nodata(image.shape, scale)
    gray, valid = np.empty(image.shape, np.uint8), np.empty(image.shape, bool)
    rows = max(1, BAND_PIXELS // max(1, image.shape[1]))
    for r0 in range(0, image.shape[0], rows):
        working = to_working(image[r0 : r0 + rows], scale, nodata)
        gray[r0 : r0 + rows] = stretch.apply(working)
        np.isfinite(working, out=valid[r0 : r0 + rows])
    if mask is not None:
        valid &= mask
        gray[~mask] = stretch.fill
    return ModelInput(gray, None if valid.all() else valid, scale)


def _all_nodata(shape: tuple[int, ...], scale: Scale) -> ModelInput:
    return ModelInput(np.zeros(shape, np.uint8), np.zeros(shape, bool), scale)


@functools.lru_cache(maxsize=32)
def _level_values(dtype: str, scale: Scale, nodata: float | None) -> np.ndarray:
    """Working value of every level of an 8- or 16-bit type (NaN where it means nodata), made once."""
    info = np.iinfo(np.dtype(dtype))
    levels = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    values = to_working(levels, scale, nodata)
    values.flags.writeable = False
    return values


def _convert_by_table(
    image: np.ndarray, scale: Scale, nodata: float | None, mask: np.ndarray | None
) -> ModelInput:
    """8- and 16-bit inputs: a histogram for the statistics, a 256- or 65536-entry table for the pixels."""
    values = _level_values(image.dtype.str, scale, nodata)
    offset = np.iinfo(image.dtype).min
    index = image.astype(np.int32) - offset if offset else image
    sample = _sample(index)
    if mask is not None:
        sample = sample[_sample(mask)]
    stretch = Stretch.from_counts(values, np.bincount(sample.ravel(), minlength=values.size))
    if stretch is None:
        return _all_nodata(image.shape, scale)
    gray = np.take(stretch.apply(values), index)  # half the time of table[index] for uint8 indices
    level_valid = np.isfinite(values)
    valid = None if level_valid.all() else np.take(level_valid, index)
    if mask is not None:
        valid = mask if valid is None else valid & mask
        gray[~mask] = stretch.fill
    return ModelInput(gray, None if valid is None or valid.all() else valid, scale)
