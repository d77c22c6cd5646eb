"""Checks of the ML service's mask and overlay, mask statistics, and atomic writes of the result files.

The ML service renders and encodes both PNGs (it has the decoded image at hand), so the worker only checks
them and writes their bytes: no image is decoded twice and no PNG encoded twice.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ml.outputs import OIL, encode_mask_png

PNG_COMPRESS_LEVEL = 1  # PNGs written with Pillow (tests, fallbacks): encoding time matters more than size


def canonical_mask(png: bytes, size: tuple[int, int]) -> tuple[np.ndarray, bytes]:
    """The service's mask as uint8 0/255 of exactly `size` (width, height), and PNG bytes holding exactly it.

    The bytes are the service's own when they already are a 0/255 greyscale PNG (the usual case), so the
    mask is not encoded a second time. ValueError if `png` is not a mask of that size.
    """
    try:
        with Image.open(io.BytesIO(png)) as im:
            if im.size != size:
                raise ValueError(
                    f"ML service returned a {im.size[0]}x{im.size[1]} mask for a {size[0]}x{size[1]} image"
                )
            mode = im.mode
            arr = np.asarray(im.convert("L"))
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"ML service returned an unreadable mask: {exc}") from exc
    mask = np.where(arr >= 128, OIL, 0).astype(np.uint8)
    if mode == "L" and np.array_equal(arr, mask):
        return mask, png
    return mask, encode_mask_png(mask)


def decode_mask(png: bytes, size: tuple[int, int]) -> np.ndarray:
    """The ML service's mask as uint8 0/255 of exactly `size` (width, height); ValueError if it is not one."""
    return canonical_mask(png, size)[0]


def check_overlay(png: bytes, size: tuple[int, int]) -> None:
    """ValueError unless `png` is a palette PNG of `size` (header only: the service rendered it)."""
    try:
        with Image.open(io.BytesIO(png)) as im:
            kind, mode, got = im.format, im.mode, im.size
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"ML service returned an unreadable overlay: {exc}") from exc
    if (kind, mode, got) != ("PNG", "P", size):
        raise ValueError(f"ML service returned a {kind} {mode} {got[0]}x{got[1]} overlay for a {size} image")


def oil_pixels(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask == OIL))


def write_atomic(data: bytes, dest: Path) -> None:
    """Write bytes via a temporary name, so a crash never leaves a half file that looks finished."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def save_png_atomic(image: Image.Image, dest: Path) -> None:
    """Encode a Pillow image as PNG and write it atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    write_atomic(buffer.getvalue(), dest)


def mask_image(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(mask)
