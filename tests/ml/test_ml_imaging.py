"""Decoding uploads: every supported flavour gives uint8 HxW, every bad one an ImageError with its status."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from ml.imaging import ImageError, decode_image
from ml.outputs import encode_mask_png

Encoder = Callable[..., bytes]


GREY = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (30, 2))[:, :37]  # 30 x 37, not square


def test_grey_png_round_trips_exactly(encoder: Encoder) -> None:
    out = decode_image(encoder(GREY, "PNG"))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, GREY)


def test_sixteen_bit_tiff_is_scaled_to_eight_bits(encoder: Encoder) -> None:
    wide = GREY.astype(np.uint16) * 257  # full 16-bit range
    image = Image.fromarray(wide)
    assert image.mode == "I;16"
    out = decode_image(encoder(image, "TIFF"))
    assert out.shape == GREY.shape
    assert np.abs(out.astype(int) - GREY).max() <= 1


def test_rgba_png_uses_the_backscatter_channel(encoder: Encoder) -> None:
    rgba = np.dstack([GREY, GREY, GREY, np.full_like(GREY, 128)])
    out = decode_image(encoder(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(out, GREY)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_decodes_close_to_the_original(encoder: Encoder, mode: str) -> None:
    smooth = np.tile(np.linspace(40, 200, 64).astype(np.uint8), (48, 1))
    out = decode_image(encoder(Image.fromarray(smooth).convert(mode), "JPEG", quality=95))
    assert out.shape == (48, 64)
    assert np.abs(out.astype(int) - smooth).mean() < 3


def test_one_bit_and_palette_images_decode(encoder: Encoder) -> None:
    bw = Image.fromarray(GREY > 100)
    assert set(np.unique(decode_image(encoder(bw, "PNG")))) <= {0, 255}
    palette = Image.fromarray(GREY).convert("P")
    assert decode_image(encoder(palette, "PNG")).shape == GREY.shape


def status_of(data: bytes, max_pixels: int = 400_000_000) -> tuple[int, str]:
    with pytest.raises(ImageError) as info:
        decode_image(data, max_pixels)
    return info.value.status_code, info.value.detail


def test_empty_body_is_400() -> None:
    assert status_of(b"") == (400, "empty file: the upload has no bytes")


def test_not_an_image_is_400() -> None:
    code, detail = status_of(b"%PDF-1.7 this is not a picture" * 20)
    assert code == 400
    assert "not an image" in detail


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_truncated_image_is_400(encoder: Encoder, fmt: str) -> None:
    noisy = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    data = encoder(noisy, fmt)
    code, detail = status_of(data[: len(data) // 2])
    assert code == 400
    assert "truncated" in detail or "corrupt" in detail or "unreadable" in detail


def test_bomb_is_413_before_decoding(bomb_png: bytes) -> None:
    bomb = bomb_png
    assert len(bomb) < 200
    t0 = time.perf_counter()
    code, detail = status_of(bomb)
    assert code == 413
    assert "pixels" in detail
    assert time.perf_counter() - t0 < 0.5  # 2.5 gigapixels were never allocated


def test_pixel_limit_is_configurable(encoder: Encoder) -> None:
    data = encoder(GREY, "PNG")
    code, detail = status_of(data, max_pixels=GREY.size - 1)
    assert code == 413
    assert f"limit of {GREY.size - 1}" in detail
    assert decode_image(data, max_pixels=GREY.size).shape == GREY.shape


def test_mask_png_is_single_channel_and_lossless() -> None:
    mask = np.where(GREY > 120, 255, 0).astype(np.uint8)
    with Image.open(io.BytesIO(encode_mask_png(mask))) as image:
        assert image.format == "PNG"
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), mask)
