"""Segment images of any size with the ONNX model: tiling, batching and seamless blending.

The model was trained on 256x256 tiles, so every image is cut into overlapping tiles of exactly that size
(images smaller than a tile are reflect-padded up to it). Tile probabilities are blended with a separable
tent window: tile borders, where a CNN sees the least context, get the least weight, and the weighted mean
changes continuously across tiles, so no seams show. Only one batch of tiles and one float32 HxW accumulator
are alive at a time, which keeps a 10000x10000 scene within a few hundred MB.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnxruntime as ort

THRESHOLD = 0.5
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "slicknet.onnx"

# (N, 1, T, T) float32 grey levels in [0, 1] -> (N, 1, T, T) float32 oil probabilities.
Predict = Callable[[np.ndarray], np.ndarray]


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
# Tiles per model run: a number, or a function asked before every run (Segmenter adapts it to the load).
BatchSize = int | Callable[[], int]


def batches(items: Iterator[T], size: BatchSize) -> Iterator[list[T]]:
    """Consecutive chunks of at most `size` items (itertools.batched is Python 3.12+)."""
    while chunk := list(islice(items, size() if callable(size) else size)):
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
    batch_size: BatchSize = 8,
) -> Iterator[np.ndarray]:
    """Blended probabilities of each image, in order, with batches filled across image boundaries.

    Many small images (a batch of 256x256 tiles) then cost one model run per `batch_size` tiles, not one
    per image. Images are read from `images` only when their first tile is needed and each map is yielded
    as soon as its last tile is in, so at most about `batch_size` images are held at once.
    """
    window = blend_window(tile, overlap)
    window2d = np.outer(window, window)
    canvases: list[_Canvas] = []  # images started and not yet yielded, in order

    def positions() -> Iterator[tuple[_Canvas, int, int]]:
        for image in images:
            if image.ndim != 2 or image.size == 0:
                raise ValueError(f"expected a non-empty 2-D image, got shape {image.shape}")
            padded = pad_to_tile(image, tile)
            corners = list(tile_positions(*padded.shape, tile, overlap))
            # A one-tile image needs no blending: its map is the tile's probabilities (set when they come).
            acc = np.zeros(padded.shape, np.float32) if len(corners) > 1 else np.empty(0, np.float32)
            canvas = _Canvas(*image.shape, padded, acc, len(corners))
            canvases.append(canvas)
            for y, x in corners:
                yield canvas, y, x

    for chunk in batches(positions(), batch_size):
        batch = np.stack([c.padded[y : y + tile, x : x + tile] for c, y, x in chunk])
        probs = predict((batch.astype(np.float32) / np.float32(255.0))[:, None])
        if probs.shape != (len(chunk), 1, tile, tile):
            raise ValueError(f"model returned shape {probs.shape} for {len(chunk)} tiles of {tile}")
        for (canvas, y, x), prob in zip(chunk, probs[:, 0], strict=True):
            if canvas.acc.size:
                canvas.acc[y : y + tile, x : x + tile] += prob * window2d
            else:
                canvas.acc = prob
            canvas.remaining -= 1
        while canvases and canvases[0].remaining == 0:
            yield _normalised(canvases.pop(0), tile, overlap, window)


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


@dataclass(frozen=True)
class ModelInfo:
    """What the service reports about the weights it serves."""

    name: str
    version: str
    sha256: str
    epoch: str | None
    validation: dict[str, float] = field(default_factory=dict)


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
    return ModelInfo(name=name, version=version, sha256=sha, epoch=epoch, validation=validation)


class Segmenter:
    """ONNX Runtime sessions plus the tiling settings; thread-safe (ORT sessions allow concurrent runs).

    While one segmentation runs alone it gets `threads` intra-op threads and `batch_size` tiles per run; while
    several run at once, each runs one tile at a time on a session of `shared_threads` threads (default: all
    `threads`), so that concurrent requests split the cores instead of oversubscribing them. Measured on 2
    cores, 256x256 tiles, two segmentations at once (ms of wall time per tile, docs/benchmarks.md): 2 threads
    each 11.0-11.4, 1 thread each 10.2-10.5; one at a time on 2 threads in batches of 8, 10.3-10.9.

    A segmentation left alone keeps the shared setting for `settle_seconds` more: a worker sends its next
    request a few milliseconds after its previous one returns, and a batch of 8 tiles started on every thread
    in that gap would then share the cores with the newcomer for its whole run (~80 ms). A job's last
    request, or one large scene, still gets every thread after that short wait.
    """

    def __init__(
        self,
        model_path: Path = DEFAULT_MODEL_PATH,
        threads: int = 2,
        tile_size: int = 256,
        overlap: int = 32,
        batch_size: int = 8,
        allow_spinning: bool = False,
        shared_threads: int | None = None,
        settle_seconds: float = 0.1,
    ) -> None:
        tile_starts(tile_size, tile_size, overlap)  # validates overlap early
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        shared_threads = threads if shared_threads is None else shared_threads
        if not 1 <= shared_threads <= threads:
            raise ValueError(f"shared_threads must be in [1, {threads}], got {shared_threads}")
        self.session = _session(model_path, threads, allow_spinning)
        # The session used while several segmentations run at once (the same one when the counts agree).
        self.shared_session = self.session
        if shared_threads != threads:
            self.shared_session = _session(model_path, shared_threads, allow_spinning)
        self.input_name = self.session.get_inputs()[0].name
        self.info = read_model_info(Path(model_path), self.session.get_modelmeta().custom_metadata_map)
        self.threads = threads
        self.shared_threads = shared_threads
        self.tile_size = tile_size
        self.overlap = overlap
        self.batch_size = batch_size
        self.settle_seconds = settle_seconds
        self._active = 0
        self._shared_until = 0.0  # time.monotonic() until which a lone segmentation keeps the shared setting
        self._lock = threading.Lock()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Raw model call on (N, 1, T, T) float32 in [0, 1], on the session that fits the current load."""
        session = self.shared_session if self._shared() else self.session
        return session.run(None, {self.input_name: batch})[0]

    def _shared(self) -> bool:
        """Whether the cores are shared: another segmentation runs now, or ended within settle_seconds."""
        return self._active > 1 or time.monotonic() < self._shared_until

    def _current_batch_size(self) -> int:
        return 1 if self._shared() else self.batch_size

    def probabilities_many(self, grays: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """float32 oil probability maps of each image, in order (see sliding_window_many)."""
        with self._lock:
            self._active += 1
        try:
            yield from sliding_window_many(
                grays, self.predict, self.tile_size, self.overlap, self._current_batch_size
            )
        finally:
            with self._lock:
                if self._active > 1:
                    self._shared_until = time.monotonic() + self.settle_seconds
                self._active -= 1

    def probabilities(self, gray: np.ndarray) -> np.ndarray:
        """uint8 HxW -> float32 HxW oil probability."""
        (prob,) = self.probabilities_many([gray])  # runs the generator to its end: the count drops again
        return prob

    def segment(self, gray: np.ndarray) -> np.ndarray:
        """uint8 HxW -> uint8 HxW mask (255 = oil)."""
        return to_mask(self.probabilities(gray))

    def segment_many(self, grays: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The mask of each image, in order; small images share model runs (see sliding_window_many)."""
        return (to_mask(prob) for prob in self.probabilities_many(grays))


def _session(model_path: Path, threads: int, allow_spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning threads keep a core busy between runs and while a sibling waits for a core it shares.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
