"""Decoding uploads: every supported flavour gives the model's input, every bad one an ImageError."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from ml.image_errors import ImageError
from ml.imaging import decode_image
from ml.outputs import encode_mask_png
from ml.radiometry import Scale, convert

Encoder = Callable[..., bytes]
GDAL_METADATA_TAG, GDAL_NODATA_TAG = 42112, 42113  # the TIFF tags GDAL keeps its metadata and nodata in


GREY = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (30, 2))[:, :37]  # 30 x 37, not square


def test_grey_png_is_read_losslessly_then_stretched(encoder: Encoder) -> None:
    out = decode_image(encoder(GREY, "PNG"))
    assert out.scale is Scale.GREY and out.valid is None
    np.testing.assert_array_equal(out.gray, convert(GREY).gray)


def test_sixteen_bit_tiff_is_read_as_amplitude_numbers(encoder: Encoder) -> None:
    amplitude = GREY.astype(np.uint16) * 4 + 20  # GRD-like digital numbers, far below 65535
    image = Image.fromarray(amplitude)
    assert image.mode == "I;16"
    out = decode_image(encoder(image, "TIFF"))
    assert out.scale is Scale.AMPLITUDE and out.gray.shape == GREY.shape
    np.testing.assert_array_equal(out.gray, convert(amplitude).gray)
    assert out.gray.min() == 0 and out.gray.max() == 255  # not a black image


def test_signed_sixteen_bit_and_float_tiffs(encoder: Encoder) -> None:
    assert decode_image(encoder(Image.fromarray(GREY.astype(np.int16) + 5), "TIFF")).scale is Scale.AMPLITUDE
    db = -25 + GREY.astype(np.float32) / 10
    assert decode_image(encoder(Image.fromarray(db), "TIFF")).scale is Scale.DB
    power = 10 ** (db / 10)
    out = decode_image(encoder(Image.fromarray(power), "TIFF"))
    assert out.scale is Scale.POWER
    assert np.abs(out.gray.astype(int) - decode_image(encoder(Image.fromarray(db), "TIFF")).gray).max() <= 1


def test_tiff_nodata_and_scale_tags_are_honoured(encoder: Encoder) -> None:
    power = 10 ** ((-25 + GREY.astype(np.float32) / 10) / 10)
    power[:, :5] = -1.0
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[GDAL_NODATA_TAG] = "-1"
    tags[GDAL_METADATA_TAG] = '<GDALMetadata><Item name="SCALE" role="x">power</Item></GDALMetadata>'
    out = decode_image(encoder(Image.fromarray(power), "TIFF", tiffinfo=tags))
    assert out.scale is Scale.POWER  # the -1 fill would otherwise make it dB
    assert out.valid is not None and not out.valid[:, :5].any() and out.valid[:, 5:].all()
    # The service's own setting wins over a tag only when it is not auto.
    assert (
        decode_image(encoder(Image.fromarray(power), "TIFF", tiffinfo=tags), scale=Scale.DB).scale is Scale.DB
    )


def test_rgba_png_uses_the_backscatter_channel_and_alpha_as_nodata(encoder: Encoder) -> None:
    alpha = np.full_like(GREY, 128)
    alpha[:3] = 0
    rgba = np.dstack([GREY, 255 - GREY, np.zeros_like(GREY), alpha])
    out = decode_image(encoder(Image.fromarray(rgba, "RGBA"), "PNG"))
    expected = convert(GREY, mask=alpha > 0)
    np.testing.assert_array_equal(out.gray, expected.gray)
    assert out.valid is not None and not out.valid[:3].any() and out.valid[3:].all()


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_decodes_close_to_the_original(encoder: Encoder, mode: str) -> None:
    smooth = np.tile(np.linspace(40, 200, 64).astype(np.uint8), (48, 1))
    out = decode_image(encoder(Image.fromarray(smooth).convert(mode), "JPEG", quality=95))
    assert out.gray.shape == (48, 64)
    assert np.abs(out.gray.astype(int) - convert(smooth).gray).mean() < 3


def test_one_bit_and_palette_images_decode(encoder: Encoder) -> None:
    bw = Image.fromarray(GREY > 100)
    assert set(np.unique(decode_image(encoder(bw, "PNG")).gray)) <= {0, 255}
    palette = Image.fromarray(GREY).convert("P")
    assert decode_image(encoder(palette, "PNG")).gray.shape == GREY.shape


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
    assert decode_image(data, max_pixels=GREY.size).gray.shape == GREY.shape


def test_mask_png_is_single_channel_and_lossless() -> None:
    mask = np.where(GREY > 120, 255, 0).astype(np.uint8)
    with Image.open(io.BytesIO(encode_mask_png(mask))) as image:
        assert image.format == "PNG"
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), mask)
