"""The model over a scene one row of tiles at a time: only a row's pixels and a tile-high accumulator live.

The tiles are ml.inference's (same offsets, same tent-window blending), but instead of one accumulator for
the whole image, one of `tile` rows slides down the scene: once row k of tiles is in, the rows above row
k + 1's first pixel are final (no later tile covers them), so they are divided by their summed weights and
handed out, and the rest of the accumulator moves up. The next row of tiles is read and queued for the
runners before this row's results are awaited, so the runners never wait for reading or blending.

Tiles whose pixels are all one grey level (nodata: ml.scene.convert gives it the fill level) and tiles the
caller's `skip` names (all land) are not run and count as no oil, as ml.inference skips constant tiles.
The caller's `hide` changes what the model sees of a row (land at the sea's level, ml.scene.land); the bands
keep the grey levels as read, for the overlay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from ml.inference import Predict, axis_weight_sum, batches, blend_window, pad_to_tile, tile_starts

ReadRows = Callable[[int, int], tuple[np.ndarray, np.ndarray]]  # rows [r0, r1) -> (uint8 grey, bool valid)
Pending = list[tuple[list[int], "np.ndarray | Future[np.ndarray]"]]


@dataclass(frozen=True)
class Band:
    """Final rows [row0, row0 + len) of the scene: grey levels, validity and blended oil probabilities."""

    row0: int
    gray: np.ndarray
    valid: np.ndarray
    prob: np.ndarray


@dataclass
class TileCounts:
    """How many tiles the scene had, and how many went through the model."""

    total: int = 0
    run: int = 0


def strip_probabilities(
    read: ReadRows,
    height: int,
    width: int,
    predict: Predict,
    *,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 2,
    skip: Callable[[int, int], bool] | None = None,
    hide: Callable[[int, np.ndarray], np.ndarray] | None = None,
    counts: TileCounts | None = None,
) -> Iterator[Band]:
    """Bands of final rows, top to bottom, covering the scene; `skip(y, x)` drops a tile (e.g. all land),
    `hide(row0, gray)` gives the grey levels the model sees of rows from row0 (e.g. land as nodata)."""
    ph, pw = max(height, tile), max(width, tile)
    ys, xs = tile_starts(ph, tile, overlap), tile_starts(pw, tile, overlap)
    window = blend_window(tile, overlap)
    window2d = np.outer(window, window)
    wy, wx = axis_weight_sum(ph, ys, window), axis_weight_sum(pw, xs, window)
    acc = np.zeros((tile, pw), np.float32)  # rows [ys[k], ys[k] + tile) of the padded scene
    counts = counts if counts is not None else TileCounts()

    def queue_row(y: int) -> tuple[np.ndarray, np.ndarray, Pending]:
        gray, valid = read(y, min(y + tile, height))
        padded = pad_to_tile(gray if hide is None else hide(y, gray), tile)
        keep = []
        for x in xs:
            counts.total += 1
            pixels = padded[:, x : x + tile]
            if pixels.min() == pixels.max() or (skip is not None and skip(y, x)):
                continue
            keep.append(x)
        counts.run += len(keep)
        pending: Pending = []
        for chunk in batches(iter(keep), batch_size):
            batch = np.stack([padded[:, x : x + tile] for x in chunk]).astype(np.float32)
            batch *= np.float32(1 / 255)
            pending.append((chunk, predict(batch[:, None])))
        return gray, valid, pending

    current = queue_row(ys[0])
    for k, y in enumerate(ys):
        following = queue_row(ys[k + 1]) if k + 1 < len(ys) else None
        gray, valid, pending = current
        for chunk, outcome in pending:
            probs = outcome.result() if isinstance(outcome, Future) else outcome
            if probs.shape != (len(chunk), 1, tile, tile):
                raise ValueError(f"model returned shape {probs.shape} for {len(chunk)} tiles of {tile}")
            for x, prob in zip(chunk, probs[:, 0], strict=True):
                acc[:, x : x + tile] += prob * window2d
        end = ys[k + 1] if k + 1 < len(ys) else ph
        rows = end - y
        prob_rows = acc[:rows] / np.outer(wy[y:end], wx)
        keep_rows = min(end, height) - y
        if keep_rows > 0:
            yield Band(y, gray[:keep_rows], valid[:keep_rows], prob_rows[:keep_rows, :width])
        acc[: tile - rows] = acc[rows:]
        acc[tile - rows :] = 0
        if following is not None:
            current = following
