"""Checks of the ML service's mask and overlay, and mask statistics.

The ML service renders and encodes both PNGs (it has the decoded image at hand) and counts the oil pixels
before encoding, so the worker checks their headers and stores their bytes: no image is decoded twice and
no PNG encoded twice.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ml.outputs import OIL


def check_png(png: bytes, size: tuple[int, int], mode: str, what: str) -> None:
    """ValueError unless `png` is a PNG of `mode` and exactly `size` (width, height); header only."""
    try:
        with Image.open(io.BytesIO(png)) as im:
            kind, got_mode, got = im.format, im.mode, im.size
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"ML service returned an unreadable {what}: {exc}") from exc
    if (kind, got_mode, got) != ("PNG", mode, size):
        raise ValueError(
            f"ML service returned a {kind} {got_mode} {got[0]}x{got[1]} {what} "
            f"for a {size[0]}x{size[1]} image (expected a {mode} PNG)"
        )


def check_mask(png: bytes, size: tuple[int, int], reported: int | None) -> int:
    """Check the service's mask (greyscale PNG of `size`); its oil pixels, as reported or counted here.

    The service counts the oil before it encodes the mask; only an answer without the count (another
    implementation of the API) costs a decode here.
    """
    check_png(png, size, "L", "mask")
    if reported is None:
        with Image.open(io.BytesIO(png)) as im:
            return oil_pixels(np.asarray(im))
    if not 0 <= reported <= size[0] * size[1]:
        raise ValueError(f"ML service reported {reported} oil pixels for a {size[0]}x{size[1]} image")
    return reported


def oil_pixels(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask == OIL))
