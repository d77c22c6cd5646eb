from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend import imaging


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decode_mask_binarizes_and_keeps_size() -> None:
    raw = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    mask = imaging.decode_mask(png(raw), (4, 1))
    assert mask.dtype == np.uint8
    assert mask.tolist() == [[0, 0, 255, 255]]
    assert imaging.oil_pixels(mask) == 2


def test_decode_mask_rejects_wrong_size_and_garbage() -> None:
    with pytest.raises(ValueError, match="3x2 mask for a 2x3 image"):
        imaging.decode_mask(png(np.zeros((2, 3), np.uint8)), (2, 3))
    with pytest.raises(ValueError, match="unreadable"):
        imaging.decode_mask(b"not a png", (2, 3))


def test_save_png_atomic_leaves_only_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "m.png"
    imaging.save_png_atomic(imaging.mask_image(np.full((3, 5), 255, np.uint8)), dest)
    assert [p.name for p in dest.parent.iterdir()] == ["m.png"]
    with Image.open(dest) as im:
        assert im.mode == "L" and im.size == (5, 3)
        assert np.asarray(im).min() == 255
