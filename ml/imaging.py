"""Decode uploaded image bytes into one uint8 channel, refusing bad input with an HTTP-style status.

Pure (no FastAPI): the service maps `ImageError` to a JSON error, the evaluation CLI lets it propagate.
The declared pixel count is checked after Pillow has parsed the header and before any pixel is decoded,
so a small file that declares a gigantic canvas (a decompression bomb) never allocates its buffer.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from ml.data import to_gray_uint8

DEFAULT_MAX_PIXELS = 400_000_000


class ImageError(Exception):
    """An upload that cannot be segmented; `status_code` says which 4xx the client gets."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def configure_pixel_limit(max_pixels: int) -> None:
    """Let Pillow's bomb guard refuse at our limit, as an exception rather than a warning.

    Pillow's limit is process-wide, so it is only ever raised: several apps in one process (tests) must
    not refuse each other's images. `decode_image` checks its own `max_pixels`, which stays authoritative.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bytes of a PNG/JPEG/TIFF (8/16-bit, grey/RGB/RGBA) to a uint8 HxW array, or raise ImageError."""
    if not data:
        raise ImageError(400, "empty file: the upload has no bytes")
    try:
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(413, f"image has too many pixels (limit {max_pixels}): {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(400, "not an image: expected PNG, JPEG or TIFF") from exc
    except MemoryError:
        raise
    except Exception as exc:  # untrusted bytes: any parser failure is the client's bad file
        raise ImageError(400, f"unreadable image header: {exc}") from exc
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(
                413, f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
            )
        if width == 0 or height == 0:
            raise ImageError(400, f"image has no pixels ({width}x{height})")
        try:
            image.load()
            gray = to_gray_uint8(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(413, f"image has too many pixels (limit {max_pixels}): {exc}") from exc
        except MemoryError:
            raise
        except Exception as exc:  # truncated data, bad chunks, unsupported modes...
            raise ImageError(400, f"truncated or corrupt {image.format} image: {exc}") from exc
    if gray.shape != (height, width):
        raise ImageError(400, f"decoded shape {gray.shape} does not match declared {width}x{height}")
    return gray
