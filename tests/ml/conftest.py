"""Synthetic SAR-like images made in code (no ../shared data) and image encoders for the ML tests."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image


def make_scene(height: int = 256, width: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Speckled sea (grey ~110) with a dark elongated slick ellipse (grey ~35, lighter speckle).

    Returns the uint8 image and the boolean slick mask. Speckle is multiplicative gamma noise, as in
    multi-look SAR intensity; the slick's speckle has a higher look number, i.e. is smoother.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = height * 0.5, width * 0.45
    angle = np.deg2rad(25.0)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    slick = (u / (0.35 * width)) ** 2 + (v / (0.09 * height)) ** 2 <= 1.0
    sea = 110.0 * rng.gamma(4.0, 1 / 4.0, size=(height, width))
    oil = 35.0 * rng.gamma(16.0, 1 / 16.0, size=(height, width))
    image = np.where(slick, oil, sea)
    return np.clip(image, 0, 255).astype(np.uint8), slick


def encode(image: np.ndarray | Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    """Encode an array or PIL image to bytes in `fmt`."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def scene() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return make_scene


@pytest.fixture
def encoder() -> Callable[..., bytes]:
    return encode


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG header that declares a huge canvas (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def bomb_png() -> bytes:
    return png_declaring(50_000, 50_000)
