from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.worker import image_checks


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_check_mask_takes_the_reported_count_or_counts() -> None:
    raw = np.array([[0, 255, 255, 0]], dtype=np.uint8)
    assert image_checks.check_mask(png(raw), (4, 1), reported=2) == 2
    assert image_checks.check_mask(png(raw), (4, 1), reported=None) == 2  # counted from the pixels


def test_check_mask_rejects_wrong_size_mode_count_and_garbage() -> None:
    with pytest.raises(ValueError, match="3x2 mask for a 2x3 image"):
        image_checks.check_mask(png(np.zeros((2, 3), np.uint8)), (2, 3), reported=0)
    with pytest.raises(ValueError, match="PNG RGB 3x2 mask"):
        image_checks.check_mask(png(np.zeros((2, 3, 3), np.uint8)), (3, 2), reported=0)
    with pytest.raises(ValueError, match="reported 7 oil pixels for a 3x2 image"):
        image_checks.check_mask(png(np.zeros((2, 3), np.uint8)), (3, 2), reported=7)
    with pytest.raises(ValueError, match="unreadable mask"):
        image_checks.check_mask(b"not a png", (2, 3), reported=0)


def test_check_png_checks_overlays_by_header() -> None:
    overlay = Image.fromarray(np.zeros((2, 3), np.uint8)).convert("P")
    buffer = io.BytesIO()
    overlay.save(buffer, format="PNG")
    image_checks.check_png(buffer.getvalue(), (3, 2), "P", "overlay")
    with pytest.raises(ValueError, match="overlay"):
        image_checks.check_png(png(np.zeros((2, 3), np.uint8)), (3, 2), "P", "overlay")


def test_png_header_reads_size_and_mode_without_decoding() -> None:
    assert image_checks.png_header(png(np.zeros((2, 3), np.uint8))) == (3, 2, "L")
    assert image_checks.png_header(png(np.zeros((5, 4, 3), np.uint8))) == (4, 5, "RGB")
    assert image_checks.png_header(png(np.zeros((2, 2), np.uint16))) == (2, 2, "I;16")
    assert image_checks.png_header(png(np.zeros((2, 2), bool))) == (2, 2, "1")
    data = bytearray(png(np.zeros((2, 3), np.uint8)))
    data[17] ^= 1  # a bit of the width flipped: the IHDR checksum no longer matches
    for bad in (bytes(data), b"\x89PNG\r\n\x1a\n", b"GIF89a..."):
        with pytest.raises(ValueError):
            image_checks.png_header(bad)
