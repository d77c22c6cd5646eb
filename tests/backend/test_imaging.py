from __future__ import annotations

import io
from collections.abc import Callable
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


@pytest.mark.parametrize("fmt", ["PNG", "TIFF16", "RGBA", "JPEG"])
def test_overlay_is_grey_rgb_with_red_oil(
    fmt: str, make_sar: Callable[..., np.ndarray], encode: Callable[[np.ndarray, str], bytes]
) -> None:
    gray = make_sar(40, 60, seed=1)
    mask = np.zeros_like(gray)
    mask[10:20, 5:30] = 255
    with Image.open(io.BytesIO(encode(gray, fmt))) as im:
        overlay = np.asarray(imaging.render_overlay(im, mask))
    assert overlay.shape == (40, 60, 3)
    sea = overlay[mask == 0]
    assert (sea[:, 0] == sea[:, 1]).all() and (sea[:, 1] == sea[:, 2]).all()  # untouched pixels stay grey
    if fmt != "JPEG":  # lossless formats: the grey levels are the image's own
        assert np.array_equal(sea[:, 0], gray[mask == 0])
    oil = overlay[mask == 255].astype(int)
    assert (oil[:, 0] > oil[:, 1]).all() and (oil[:, 1] == oil[:, 2]).all()


def test_save_png_atomic_leaves_only_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "m.png"
    imaging.save_png_atomic(imaging.mask_image(np.full((3, 5), 255, np.uint8)), dest)
    assert [p.name for p in dest.parent.iterdir()] == ["m.png"]
    with Image.open(dest) as im:
        assert im.mode == "L" and im.size == (5, 3)
        assert np.asarray(im).min() == 255
