"""Mask checks, mask statistics and overlay rendering (NumPy + Pillow, no I/O beyond bytes and paths)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ml.data import to_gray_uint8

OIL = 255
OVERLAY_RGB = np.array([255, 0, 0], dtype=np.float32)
OVERLAY_ALPHA = 0.45
PNG_COMPRESS_LEVEL = 1  # masks and overlays: encoding time matters more than a few percent of size


def decode_mask(png: bytes, size: tuple[int, int]) -> np.ndarray:
    """The ML service's mask as uint8 0/255 of exactly `size` (width, height); ValueError if it is not one."""
    try:
        with Image.open(io.BytesIO(png)) as im:
            if im.size != size:
                raise ValueError(
                    f"ML service returned a {im.size[0]}x{im.size[1]} mask for a {size[0]}x{size[1]} image"
                )
            arr = np.asarray(im.convert("L"))
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"ML service returned an unreadable mask: {exc}") from exc
    return np.where(arr >= 128, OIL, 0).astype(np.uint8)


def oil_pixels(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask == OIL))


def render_overlay(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """The image as grey RGB with oil pixels tinted translucent red."""
    gray = to_gray_uint8(image)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    oil = mask == OIL
    # Blend only the oil pixels: memory stays proportional to the slick, not the scene.
    rgb[oil] = (rgb[oil] * (1 - OVERLAY_ALPHA) + OVERLAY_RGB * OVERLAY_ALPHA).round().astype(np.uint8)
    return Image.fromarray(rgb)


def save_png_atomic(image: Image.Image, dest: Path) -> None:
    """Write a PNG via a temporary name, so a crash never leaves a half file that looks finished."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        image.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def mask_image(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(mask)
