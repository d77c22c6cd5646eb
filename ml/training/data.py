"""Image/mask pair discovery, loading, the contiguous-block validation split and the oil-free chips.

NumPy and Pillow only: shared by training (torch) and evaluation (ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ml.imaging import pixel_band

# The project's datasets beside the checkout (never copied into it): the defaults of every training command.
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DEFAULT_DATA = SHARED_DATA / "sos-sentinel1-train"
DEFAULT_NEGATIVES = SHARED_DATA / "csiro-s1-nonoil"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_THRESHOLD = 128

# Validation = these chunks of the id-sorted tile list cut into VAL_CHUNKS contiguous blocks.
# Neighbouring ids are views of the same scene, so blocks (not random tiles) are held out.
VAL_CHUNKS = 20
VAL_BLOCKS = (3, 10, 16)


def find_pairs(images_dir: Path, masks_dir: Path) -> list[tuple[str, Path, Path]]:
    """Return (stem, image, mask) for every stem present in both folders, sorted by stem."""
    images = {p.stem: p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    stems = sorted(images.keys() & masks.keys(), key=_stem_key)
    return [(s, images[s], masks[s]) for s in stems]


def _stem_key(stem: str) -> tuple[int, int | str]:
    return (0, int(stem)) if stem.isdigit() else (1, stem)


def load_image(path: Path) -> np.ndarray:
    """Channel 0 of an 8-bit training image, raw: training augments it before ml.radiometry's stretch."""
    with Image.open(path) as im:
        band, _alpha = pixel_band(im)
    if band.dtype != np.uint8:
        raise ValueError(f"{path}: training images are 8-bit, got {band.dtype}")
    return band


def load_mask(path: Path) -> np.ndarray:
    """Binary mask (0/1 uint8): anti-aliased edges are thresholded at 128."""
    with Image.open(path) as im:
        band, _alpha = pixel_band(im)
    return (band >= MASK_THRESHOLD).astype(np.uint8)


def split_by_blocks(
    stems: Sequence[str], chunks: int = VAL_CHUNKS, val_blocks: Sequence[int] = VAL_BLOCKS
) -> tuple[list[int], list[int]]:
    """Indices of train and validation items; validation is whole contiguous id blocks."""
    n = len(stems)
    bounds = np.linspace(0, n, chunks + 1).round().astype(int)
    val: list[int] = []
    for b in val_blocks:
        val.extend(range(bounds[b], bounds[b + 1]))
    val_set = set(val)
    return [i for i in range(n) if i not in val_set], val


def load_arrays(pairs: Sequence[tuple[str, Path, Path]]) -> tuple[np.ndarray, np.ndarray]:
    """Stack same-sized pairs into (N, H, W) uint8 arrays."""
    images = np.stack([load_image(p[1]) for p in pairs])
    masks = np.stack([load_mask(p[2]) for p in pairs])
    return images, masks


# Every NEGATIVE_VAL_EVERY-th scene id (sorted) of the oil-free chips is held out: a scene's chips stay
# together.
NEGATIVE_VAL_EVERY = 7
LAND_GREY = 255  # the CSIRO authors masked land to saturated white
LAND_FRACTION_MIN = 0.005  # chips with less than this are open sea: a white pixel there is a bright target


def split_negatives(scene_ids: Sequence[str]) -> tuple[list[int], list[int]]:
    """Indices of train and validation chips, split by scene id (never by chip)."""
    held = set(sorted(set(scene_ids))[::NEGATIVE_VAL_EVERY])
    val = [i for i, s in enumerate(scene_ids) if s in held]
    return [i for i, s in enumerate(scene_ids) if s not in held], val


def load_negatives(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Oil-free chips (N, H, W) uint8, their land masks (N, H, W) bool, and their scene ids (chips.csv)."""
    import csv

    with (folder / "chips.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    chips = np.stack([load_image(folder / "images" / row["file"]) for row in rows])
    has_land = np.array([float(row["land_fraction"]) >= LAND_FRACTION_MIN for row in rows])
    land = (chips == LAND_GREY) & has_land[:, None, None]
    return chips, land, [row["scene_id"] for row in rows]
