"""Work limits checked before the model runs: the cost of an image is its tiles, not its file size.

A 1 x 1,000,000 PNG is a megapixel in a kilobyte, but padded to 256-pixel tiles it is 4,000 model runs
(256 M pixels of input); a progressive JPEG can repeat one scan thousands of times, each a full decode.
Both are refused with 413 and the reason, before any work.
"""

from __future__ import annotations

from ml.image_errors import ImageError

DEFAULT_TILE = 256
# Padding a thin image up to whole tiles may cost at most this many times its own pixels (a tile-sized
# image needs no padding; a 7 x 300 strip is cheap in absolute terms and stays allowed: see below).
MAX_PADDING_FACTOR = 16
# Images whose padded input is at most this many tiles are allowed whatever their shape.
SMALL_TILES = 4
DEFAULT_MAX_JPEG_SCANS = 100  # a normal progressive JPEG has ~10
JPEG_SOI, JPEG_SOS = b"\xff\xd8", b"\xff\xda"


def check_work(width: int, height: int, max_pixels: int, tile: int = DEFAULT_TILE) -> None:
    """413 unless the model input, each side padded up to a tile, fits the pixel budget and the shape rule."""
    padded = max(width, tile) * max(height, tile)
    if padded > max(max_pixels, tile * tile):  # one tile is always allowed
        raise ImageError(
            413,
            f"image is {width}x{height}: padded to {tile}-pixel tiles that is {padded} pixels of model "
            f"input, over the limit of {max_pixels}",
        )
    if padded > SMALL_TILES * tile * tile and padded > MAX_PADDING_FACTOR * width * height:
        raise ImageError(
            413,
            f"image is {width}x{height}, a strip: padded to {tile}-pixel tiles it would cost "
            f"{padded // max(1, width * height)}x its own pixels of model work (at most "
            f"{MAX_PADDING_FACTOR}x); crop it or send the scene it was cut from",
        )


def check_jpeg_scans(data: bytes, max_scans: int = DEFAULT_MAX_JPEG_SCANS) -> None:
    """413 for a JPEG with more than `max_scans` scans (each one decodes the whole image again).

    Markers cannot hide in entropy-coded data (a 0xFF byte there is always stuffed with 0x00), so counting
    FF DA counts the scans without decoding anything.
    """
    if data.startswith(JPEG_SOI):
        scans = data.count(JPEG_SOS)
        if scans > max_scans:
            raise ImageError(413, f"JPEG has {scans} scans, more than the limit of {max_scans}")
