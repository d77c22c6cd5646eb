"""A scene's fall of backscatter across its columns, fitted once, so that its far range looks like its near.

The sea's backscatter falls with the incidence angle: 5-8 dB from near to far range across an IW swath
(ml/models/MODEL_CARD.md, round 5). A whole scene is stretched once (ml.scene.convert), so without this its
far range reaches the model several tens of grey levels darker, and with less contrast, than any tile the
model was trained on, where every tile was stretched on itself: the network's oil cue is "darker than the
sea around it", and the far range then is. Operational oil detection normalises the incidence angle first
for that reason. In a GRD product, and roughly in a map-projected one, range runs along the columns, so the
trend is a smooth curve of the column: a quadratic through the medians of blocks of columns, fitted in the
working domain (dB for calibrated and amplitude inputs, where the fall is close to linear in the angle),
with the blocks far off the curve (land, a slick longer than half a block's rows) left out. The first
curve is a Theil-Sen line (the median of the blocks' pairwise slopes), which a fifth of the blocks on land
at one end cannot tilt, as they tilt a least-squares fit. What is removed is the curve minus its mean, so
the scene's overall level stays as it was.
"""

from __future__ import annotations

import numpy as np

BLOCK_COLUMNS = 32  # columns per median (a block of a 20 m scene is 640 m wide)
MIN_COLUMNS = 1024  # narrower images span a few km of range: too little fall to fit, left as they are
MIN_BLOCKS = 8  # blocks with data needed to fit a curve at all
MIN_BLOCK_VALUES = 256  # valid values a block needs for its median to count
REJECT_SIGMAS = 3.0  # blocks further off the curve than this many robust sigmas are refitted without
MIN_SPREAD_DB = 0.05  # a floor under the robust sigma (a noiseless image's blocks all agree)
ROUNDS = 3  # quadratic fits, each without the blocks off the previous curve


def range_correction(working: np.ndarray) -> np.ndarray | None:
    """float32 per column, to add to a window's working values (NaN = nodata) of the whole scene's width;
    None when the image is too narrow or holds too few valid columns for a curve to mean anything."""
    width = working.shape[1]
    if width < MIN_COLUMNS:
        return None
    centres, medians = _block_medians(working)
    if centres.size < MIN_BLOCKS:
        return None
    x = centres / (width - 1) * 2 - 1  # -1..1: a well-conditioned fit
    keep = np.ones(centres.size, bool)
    fitted = _theil_sen_line(x, medians)
    for _ in range(ROUNDS):
        residual = medians - fitted(x)
        spread = 1.4826 * float(np.median(np.abs(residual[keep] - np.median(residual[keep]))))
        on_curve = np.abs(residual) <= REJECT_SIGMAS * max(spread, MIN_SPREAD_DB)
        if np.count_nonzero(on_curve) < MIN_BLOCKS:
            break
        keep = on_curve
        fitted = np.poly1d(np.polyfit(x[keep], medians[keep], 2))
    columns = np.linspace(-1.0, 1.0, width)
    curve = fitted(columns)
    level = float(np.mean(fitted(x[keep])))  # the fitted sea's mean level stays
    return (level - curve).astype(np.float32)


def _block_medians(working: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column centres, medians) of the blocks of BLOCK_COLUMNS columns holding enough valid values."""
    width = working.shape[1]
    centres, medians = [], []
    for col0 in range(0, width, BLOCK_COLUMNS):
        block = working[:, col0 : col0 + BLOCK_COLUMNS]
        values = block[np.isfinite(block)]
        if values.size >= MIN_BLOCK_VALUES:
            centres.append(col0 + (block.shape[1] - 1) / 2)
            medians.append(float(np.median(values)))
    return np.asarray(centres, np.float64), np.asarray(medians, np.float64)


def _theil_sen_line(x: np.ndarray, y: np.ndarray) -> np.poly1d:
    """The median of the pairwise slopes and the median intercept: robust to ~29 % of outlying blocks."""
    i, j = np.triu_indices(x.size, k=1)
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    return np.poly1d([slope, float(np.median(y - slope * x))])
