"""Segment images of any size with the ONNX model: tiling, batching and seamless blending.

The model was trained on 256x256 tiles, so every image is cut into overlapping tiles of exactly that size
(images smaller than a tile are reflect-padded up to it). Tile probabilities are blended with a separable
tent window: tile borders, where a CNN sees the least context, get the least weight, and the weighted mean
changes continuously across tiles, so no seams show. Only the few batches of tiles queued for the model and
one float32 HxW accumulator per image in progress are alive at a time, which keeps a 10000x10000 scene
within a few hundred MB.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np

from ml.cancel import cancellable
from ml.runners import ModelRunners

THRESHOLD = 0.5  # unless the model's metadata names its own (ml.training.threshold, ml.training.export)
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "slicknet.onnx"

# (N, 1, T, T) float32 grey levels in [0, 1] -> (N, 1, T, T) float32 oil probabilities, now or later.
Predict = Callable[[np.ndarray], "np.ndarray | Future[np.ndarray]"]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread tile offsets covering [0, length) whose neighbours overlap by at least `overlap`."""
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, {tile}), got {overlap}")
    if length <= tile:
        return [0]
    count = -(-(length - tile) // (tile - overlap)) + 1
    return [int(s) for s in np.linspace(0, length - tile, count).round()]


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """1-D tent weights: linear ramps over `overlap` pixels at both ends, 1 in between, never 0."""
    window = np.ones(tile, dtype=np.float32)
    if overlap > 0:
        ramp = ((np.arange(overlap, dtype=np.float32) + 0.5) / overlap).astype(np.float32)
        window[:overlap] = np.minimum(window[:overlap], ramp)
        window[-overlap:] = np.minimum(window[-overlap:], ramp[::-1])
    return window


def axis_weight_sum(length: int, starts: list[int], window: np.ndarray) -> np.ndarray:
    """Sum of the shifted 1-D windows along one axis; the 2-D weight sum is an outer product of two."""
    total = np.zeros(length, dtype=np.float32)
    for s in starts:
        total[s : s + len(window)] += window
    return total


def pad_to_tile(image: np.ndarray, tile: int) -> np.ndarray:
    """Reflect-pad bottom/right so both sides are at least `tile` (no copy when already large enough)."""
    pad_h, pad_w = max(0, tile - image.shape[0]), max(0, tile - image.shape[1])
    if pad_h == 0 and pad_w == 0:
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w)), mode="reflect")


def tile_positions(height: int, width: int, tile: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Top-left corners in row-major order, so work proceeds one tile row at a time."""
    xs = tile_starts(width, tile, overlap)
    for y in tile_starts(height, tile, overlap):
        for x in xs:
            yield y, x


T = TypeVar("T")


def batches(items: Iterator[T], size: int) -> Iterator[list[T]]:
    """Consecutive chunks of at most `size` items (itertools.batched is Python 3.12+)."""
    while chunk := list(islice(items, size)):
        yield chunk


def sliding_window(
    image: np.ndarray, predict: Predict, tile: int = 256, overlap: int = 32, batch_size: int = 8
) -> np.ndarray:
    """uint8 HxW image -> float32 HxW blended probabilities, predicting `batch_size` tiles at a time."""
    return next(sliding_window_many([image], predict, tile, overlap, batch_size))


@dataclass
class _Canvas:
    """One image in flight: its padded pixels, the weighted sum of its tile probabilities, tiles to go."""

    height: int
    width: int
    padded: np.ndarray
    acc: np.ndarray
    remaining: int


def sliding_window_many(
    images: Iterable[np.ndarray],
    predict: Predict,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    ahead: int = 1,
    skip_constant: bool = False,
) -> Iterator[np.ndarray]:
    """Blended probabilities of each image, in order, with batches filled across image boundaries.

    Many small images (a batch of 256x256 tiles) then cost one model run per `batch_size` tiles, not one
    per image. With `skip_constant`, a tile whose pixels are all equal (nodata fill, a blank upload)
    carries no texture to judge: it is not run and counts as no oil, so such tiles cost no model time.
    `predict` may return a Future (ModelRunners.submit): up to `ahead` runs are then queued at
    once, so the runners never wait for this thread's decoding, blending or encoding. Images are read from
    `images` only when their first tile is needed and each map is yielded as soon as its last tile is in,
    so at most about `batch_size * ahead` images are held at once.
    """
    window = blend_window(tile, overlap)
    window2d = np.outer(window, window)
    canvases: deque[_Canvas] = deque()  # images started and not yet yielded, in order
    pending: deque[tuple[list[tuple[_Canvas, int, int]], np.ndarray | Future[np.ndarray]]] = deque()

    def positions() -> Iterator[tuple[_Canvas, int, int]]:
        for image in images:
            if image.ndim != 2 or image.size == 0:
                raise ValueError(f"expected a non-empty 2-D image, got shape {image.shape}")
            padded = pad_to_tile(image, tile)
            height, width = image.shape
            corners = list(tile_positions(padded.shape[0], padded.shape[1], tile, overlap))
            # A one-tile image needs no blending: its map is the tile's probabilities (set when they come).
            acc = np.zeros(padded.shape, np.float32) if len(corners) > 1 else np.empty(0, np.float32)
            canvas = _Canvas(height, width, padded, acc, len(corners))
            canvases.append(canvas)
            for y, x in corners:
                window_pixels = padded[y : y + tile, x : x + tile]
                if skip_constant and window_pixels.min() == window_pixels.max():
                    if not canvas.acc.size:
                        canvas.acc = np.zeros((tile, tile), np.float32)
                    canvas.remaining -= 1
                    continue
                yield canvas, y, x

    def add(chunk: list[tuple[_Canvas, int, int]], outcome: np.ndarray | Future[np.ndarray]) -> None:
        probs = outcome.result() if isinstance(outcome, Future) else outcome
        if probs.shape != (len(chunk), 1, tile, tile):
            raise ValueError(f"model returned shape {probs.shape} for {len(chunk)} tiles of {tile}")
        for (canvas, y, x), prob in zip(chunk, probs[:, 0], strict=True):
            if canvas.acc.size:
                canvas.acc[y : y + tile, x : x + tile] += prob * window2d
            else:
                canvas.acc = prob
            canvas.remaining -= 1

    for chunk in batches(positions(), batch_size):
        batch = np.stack([c.padded[y : y + tile, x : x + tile] for c, y, x in chunk])
        pending.append((chunk, predict((batch.astype(np.float32) / np.float32(255.0))[:, None])))
        while len(pending) >= max(1, ahead):
            add(*pending.popleft())
            while canvases and canvases[0].remaining == 0:
                yield _normalised(canvases.popleft(), tile, overlap, window)
    while pending:
        add(*pending.popleft())
        while canvases and canvases[0].remaining == 0:
            yield _normalised(canvases.popleft(), tile, overlap, window)
    while canvases:  # images after the last model run, all of whose tiles were skipped
        yield _normalised(canvases.popleft(), tile, overlap, window)


def _normalised(canvas: _Canvas, tile: int, overlap: int, window: np.ndarray) -> np.ndarray:
    """Divide by the summed tile weights, band by band (no HxW temporary), and crop the padding."""
    acc = canvas.acc
    ph, pw = acc.shape
    if ph == pw == tile:  # a single tile: nothing was blended
        return acc[: canvas.height, : canvas.width]
    wy = axis_weight_sum(ph, tile_starts(ph, tile, overlap), window)
    wx = axis_weight_sum(pw, tile_starts(pw, tile, overlap), window)
    for r0 in range(0, ph, tile):
        acc[r0 : r0 + tile] /= np.outer(wy[r0 : r0 + tile], wx)
    return acc[: canvas.height, : canvas.width]


def to_mask(prob: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Probabilities to a uint8 mask, 255 = oil (same >= rule as training's validation)."""
    return (prob >= threshold).view(np.uint8) * np.uint8(255)  # 5x faster than np.where


def without_nodata(mask: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Nodata pixels (valid False) are never oil, whatever the model saw there."""
    if valid is not None:
        mask[~valid] = 0
    return mask


@dataclass(frozen=True)
class ModelInfo:
    """What the service reports about the weights it serves."""

    name: str
    version: str
    sha256: str
    epoch: str | None
    validation: dict[str, float] = field(default_factory=dict)
    threshold: float = THRESHOLD


def read_model_info(path: Path, metadata: dict[str, str]) -> ModelInfo:
    """Name/version from the ONNX metadata_props; the version includes the file hash to be unambiguous."""
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    name = metadata.get("name", path.stem)
    epoch = metadata.get("epoch")
    try:
        validation = {k: float(v) for k, v in json.loads(metadata.get("validation", "{}")).items()}
    except (ValueError, TypeError, AttributeError):
        validation = {}
    version = f"{name}-e{epoch}-{sha[:12]}" if epoch else f"{name}-{sha[:12]}"
    try:
        threshold = float(metadata.get("threshold", THRESHOLD))
    except ValueError:
        threshold = THRESHOLD
    if not 0 < threshold < 1:
        threshold = THRESHOLD
    return ModelInfo(name, version, sha, epoch, validation, threshold)


class Segmenter:
    """The model's runners plus the tiling settings; thread-safe, so one serves every request of a process.

    Tiles go to `runners` model runs at once (ml.runners), each on `threads // runners` intra-op threads,
    `batch_size` tiles per run; every segmentation keeps `ahead` runs (default: two per runner) queued, and
    the runners serve the segmentations in the order they started. Batches of 1-2 tiles on single-threaded
    runners were the fastest on 2 cores (docs/benchmarks.md, round 5).
    """

    def __init__(
        self,
        model_path: Path = DEFAULT_MODEL_PATH,
        threads: int = 2,
        tile_size: int = 256,
        overlap: int = 32,
        batch_size: int = 2,
        allow_spinning: bool = False,
        runners: int | None = None,
        ahead: int | None = None,
        views: int = 1,
    ) -> None:
        tile_starts(tile_size, tile_size, overlap)  # validates overlap early
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        runners = threads if runners is None else runners
        if not 1 <= runners <= threads:
            raise ValueError(f"runners must be in [1, {threads}], got {runners}")
        self.runners = ModelRunners(Path(model_path), runners, threads // runners, allow_spinning, views)
        self.info = read_model_info(
            Path(model_path), self.runners.sessions[0].get_modelmeta().custom_metadata_map
        )
        self.threads = threads
        self.tile_size = tile_size
        self.overlap = overlap
        self.batch_size = batch_size
        self.ahead = 2 * runners if ahead is None else max(1, ahead)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Raw model call on (N, 1, T, T) float32 in [0, 1], on the next free runner."""
        return self.runners.run(batch)

    def submitter(self) -> Predict:
        """Queue model runs for one segmentation: its runs share a ticket (served after earlier ones')."""
        return functools.partial(self.runners.submit, ticket=self.runners.ticket())

    def probabilities_many(
        self, grays: Iterable[np.ndarray], cancelled: Callable[[], bool] | None = None
    ) -> Iterator[np.ndarray]:
        """float32 oil probability maps of each image, in order (see sliding_window_many).

        The runs of one call share a ticket: the runners finish an earlier call's runs before this one's.
        Once `cancelled()` is true (its client gave up), runs not yet started are dropped and
        ml.cancel.Cancelled is raised.
        """
        submit = self.submitter()
        if cancelled is not None:
            submit = cancellable(submit, cancelled)
        return sliding_window_many(
            grays, submit, self.tile_size, self.overlap, self.batch_size, self.ahead, skip_constant=True
        )

    def probabilities(self, gray: np.ndarray) -> np.ndarray:
        """uint8 HxW -> float32 HxW oil probability."""
        (prob,) = self.probabilities_many([gray])
        return prob

    def segment(self, gray: np.ndarray) -> np.ndarray:
        """uint8 HxW -> uint8 HxW mask (255 = oil)."""
        return to_mask(self.probabilities(gray), self.info.threshold)

    def segment_many(self, grays: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The mask of each image, in order; small images share model runs (see sliding_window_many)."""
        return (to_mask(prob, self.info.threshold) for prob in self.probabilities_many(grays))

    def close(self) -> None:
        self.runners.close()
