"""Synthetic SAR-like inputs for the benches, made in code: speckled sea with a dark slick, as PNGs in a zip.

The benches must run anywhere (CI, a fresh clone) without ../shared, and measure real decoding work: gamma
speckle does not compress, so the PNGs are about as large as real Sentinel-1 tiles.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from ml.imaging import decode_image
from ml.training.data import IMAGE_SUFFIXES


def sar_scene(height: int = 256, width: int = 256, seed: int = 0) -> np.ndarray:
    """uint8 speckled sea (gamma noise around grey 110) with a dark elongated slick ellipse (grey ~35)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[0:height, 0:width]
    cy, cx = height * rng.uniform(0.3, 0.7), width * rng.uniform(0.3, 0.7)
    angle = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    slick = (u / (0.3 * width)) ** 2 + (v / (0.08 * height)) ** 2 <= 1.0
    sea = 110.0 * rng.gamma(4.0, 1 / 4.0, size=(height, width)).astype(np.float32)
    oil = 35.0 * rng.gamma(16.0, 1 / 16.0, size=(height, width)).astype(np.float32)
    return np.clip(np.where(slick, oil, sea), 0, 255).astype(np.uint8)


def png_bytes(gray: np.ndarray) -> bytes:
    """PNG as a camera or GIS tool would write it (default compression)."""
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")
    return buffer.getvalue()


def synthetic_pngs(count: int, size: int) -> list[tuple[str, bytes]]:
    """`count` named PNGs of size x size pixels, each a different scene."""
    return [(f"scene_{i:05d}.png", png_bytes(sar_scene(size, size, seed=i))) for i in range(count)]


def folder_images(folder: Path, limit: int | None = None) -> list[tuple[str, bytes]]:
    """The image files of a folder (sorted, at most `limit`), as they are on disk."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not paths:
        raise SystemExit(f"no PNG/JPEG/TIFF images in {folder}")
    return [(p.name, p.read_bytes()) for p in paths]


def decode_gray(data: bytes) -> np.ndarray:
    """The grey levels the ML service would segment (its own decoding and ml.radiometry's stretch)."""
    return decode_image(data).gray


def write_zip(dest: Path, images: Iterable[tuple[str, bytes]]) -> int:
    """Store the images uncompressed (PNG/JPEG are compressed already); returns the zip's size in bytes."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in images:
            zf.writestr(name, data)
    return dest.stat().st_size
