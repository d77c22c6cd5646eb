"""The fast PNG writer and the overlay renderer: lossless, standard PNGs that any decoder reads, in bands."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from ml import outputs


def decoded(png: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return image.mode, np.asarray(image)


def reference_overlay(gray: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The overlay by its definition, computed per pixel the slow way: 128 grey levels, oil tinted red."""
    level = ((gray // 2).astype(np.float64) * 255 / 127).round()
    rgb = np.repeat(level[:, :, None], 3, axis=2).astype(np.float64)
    oil = mask == 255
    rgb[oil] = rgb[oil] * (1 - outputs.OVERLAY_ALPHA) + np.array([255.0, 0.0, 0.0]) * outputs.OVERLAY_ALPHA
    return rgb.round().astype(np.uint8)


@pytest.mark.parametrize("shape", [(1, 1), (3, 700), (257, 129)])
def test_mask_png_is_lossless_single_channel(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    mask = np.where(rng.random(shape) > 0.7, 255, 0).astype(np.uint8)
    mode, pixels = decoded(outputs.encode_mask_png(mask))
    assert mode == "L"
    np.testing.assert_array_equal(pixels, mask)


def test_overlay_is_grey_rgb_with_oil_tinted_red() -> None:
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(37, 53), dtype=np.uint8)
    mask = np.where(rng.random(gray.shape) > 0.5, 255, 0).astype(np.uint8)
    overlay = outputs.overlay_rgb(gray, mask)
    np.testing.assert_array_equal(overlay, reference_overlay(gray, mask))
    sea = overlay[mask == 0]
    assert (sea[:, 0] == sea[:, 1]).all() and (sea[:, 1] == sea[:, 2]).all()
    assert np.abs(sea[:, 0].astype(int) - gray[mask == 0]).max() <= 2  # 7 bits of grey: within a level
    oil = overlay[mask == 255].astype(int)
    assert (oil[:, 0] >= oil[:, 1]).all()


def test_overlay_png_is_rendered_in_bands_without_seams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outputs, "BAND_BYTES", 50 * 4)  # 4 rows a band: 26 bands for 101 rows
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, size=(101, 50), dtype=np.uint8)
    mask = np.zeros_like(gray)
    mask[20:70, 10:30] = 255
    with Image.open(io.BytesIO(outputs.encode_overlay_png(gray, mask))) as image:
        assert (image.format, image.mode) == ("PNG", "P")  # one byte a pixel: a third of RGB's bytes
        pixels = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(pixels, reference_overlay(gray, mask))


def test_overlay_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same 2-D shape"):
        outputs.encode_overlay_png(np.zeros((4, 5), np.uint8), np.zeros((5, 4), np.uint8))


def test_bundle_holds_both_pngs_stored() -> None:
    with zipfile.ZipFile(io.BytesIO(outputs.bundle(b"mask", b"overlay"))) as zf:
        assert zf.read("mask.png") == b"mask" and zf.read("overlay.png") == b"overlay"
        assert {info.compress_type for info in zf.infolist()} == {zipfile.ZIP_STORED}
