"""Image/mask pair discovery, loading and the contiguous-block validation split.

NumPy and Pillow only: shared by training (torch) and evaluation (ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

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


def to_gray_uint8(image: Image.Image) -> np.ndarray:
    """Any PIL image (8/16-bit, grey/RGB/RGBA) to one uint8 channel, as the service sees it."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float32)
        hi = float(arr.max()) if arr.size else 0.0
        scale = 255.0 / 65535.0 if hi > 255 else 1.0
        return np.clip(arr * scale, 0, 255).astype(np.uint8)
    if image.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
        # SAR tiles store the same value in every channel; channel 0 is the backscatter.
        image = image.convert("RGB")
        return np.asarray(image, dtype=np.uint8)[:, :, 0].copy()
    return np.asarray(image.convert("L"), dtype=np.uint8)


def load_image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return to_gray_uint8(im)


def load_mask(path: Path) -> np.ndarray:
    """Binary mask (0/1 uint8): anti-aliased edges are thresholded at 128."""
    with Image.open(path) as im:
        return (to_gray_uint8(im) >= MASK_THRESHOLD).astype(np.uint8)


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
