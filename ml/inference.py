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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

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


def batches(positions: Iterator[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    """Consecutive chunks of at most `size` positions (itertools.batched is Python 3.12+)."""
    while chunk := list(islice(positions, size)):
        yield chunk


def sliding_window(
    image: np.ndarray, predict: Predict, tile: int = 256, overlap: int = 32, batch_size: int = 8
) -> np.ndarray:
    """uint8 HxW image -> float32 HxW blended probabilities, predicting `batch_size` tiles at a time."""
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected a non-empty 2-D image, got shape {image.shape}")
    height, width = image.shape
    padded = pad_to_tile(image, tile)
    ph, pw = padded.shape
    window = blend_window(tile, overlap)
    window2d = np.outer(window, window)
    acc = np.zeros((ph, pw), dtype=np.float32)
    for chunk in batches(tile_positions(ph, pw, tile, overlap), batch_size):
        batch = np.stack([padded[y : y + tile, x : x + tile] for y, x in chunk])
        probs = predict((batch.astype(np.float32) / np.float32(255.0))[:, None])
        if probs.shape != (len(chunk), 1, tile, tile):
            raise ValueError(f"model returned shape {probs.shape} for {len(chunk)} tiles of {tile}")
        for (y, x), prob in zip(chunk, probs[:, 0], strict=True):
            acc[y : y + tile, x : x + tile] += prob * window2d
    wy = axis_weight_sum(ph, tile_starts(ph, tile, overlap), window)
    wx = axis_weight_sum(pw, tile_starts(pw, tile, overlap), window)
    for r0 in range(0, ph, tile):  # normalise band by band: no HxW temporary
        acc[r0 : r0 + tile] /= np.outer(wy[r0 : r0 + tile], wx)
    return acc[:height, :width]


def to_mask(prob: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Probabilities to a uint8 mask, 255 = oil (same >= rule as training's validation)."""
    return np.where(prob >= threshold, np.uint8(255), np.uint8(0))


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
    """One ONNX Runtime session plus the tiling settings; thread-safe (ORT sessions allow concurrent run)."""

    def __init__(
        self,
        model_path: Path = DEFAULT_MODEL_PATH,
        threads: int = 2,
        tile_size: int = 256,
        overlap: int = 32,
        batch_size: int = 8,
        allow_spinning: bool = False,
    ) -> None:
        tile_starts(tile_size, tile_size, overlap)  # validates overlap early
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning threads keep a core busy between runs and while a sibling waits for a core it shares.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
        self.session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.info = read_model_info(Path(model_path), self.session.get_modelmeta().custom_metadata_map)
        self.tile_size = tile_size
        self.overlap = overlap
        self.batch_size = batch_size

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Raw model call on (N, 1, T, T) float32 in [0, 1]."""
        return self.session.run(None, {self.input_name: batch})[0]

    def probabilities(self, gray: np.ndarray) -> np.ndarray:
        """uint8 HxW -> float32 HxW oil probability."""
        return sliding_window(gray, self.predict, self.tile_size, self.overlap, self.batch_size)

    def segment(self, gray: np.ndarray) -> np.ndarray:
        """uint8 HxW -> uint8 HxW mask (255 = oil)."""
        return to_mask(self.probabilities(gray))
