"""Decode uploaded image bytes into the model's input, refusing bad input with an HTTP-style status.

The pixels keep their own type (8/16-bit integers, 32-bit floats) until ml.radiometry converts them; a
TIFF's GDAL_NODATA tag names its nodata value and a GDAL_METADATA item `scale` may force how its numbers
are read. An alpha channel marks transparent pixels as nodata.

Pure (no FastAPI): the service maps `ImageError` to a JSON error, the evaluation CLI lets it propagate.
The declared pixel count is checked after Pillow has parsed the header and before any pixel is decoded,
so a small file that declares a gigantic canvas (a decompression bomb) never allocates its buffer.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from ml.radiometry import ModelInput, Scale, convert

DEFAULT_MAX_PIXELS = 400_000_000
GDAL_METADATA_TAG = 42112
GDAL_NODATA_TAG = 42113
_SCALE_ITEM = re.compile(r'<Item name="scale"[^>]*>\s*([A-Za-z]+)\s*</Item>', re.IGNORECASE)
# Pillow modes whose pixels are numbers of another type than uint8 (kept as they are for ml.radiometry).
_NUMERIC_MODES = {"I;16": np.uint16, "I;16L": np.uint16, "I;16B": np.uint16, "I;16S": np.int16, "I": np.int32}


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


def pixel_band(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """The image's first band in its own number type, and where an alpha channel says there is data.

    SAR renderings store the same value in R, G and B, so channel 0 is the backscatter.
    """
    if image.mode in _NUMERIC_MODES:
        return np.asarray(image).astype(_NUMERIC_MODES[image.mode], copy=False), None
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32), None
    if image.mode == "1":
        return np.asarray(image.convert("L"), dtype=np.uint8), None
    if image.mode == "L":
        return np.asarray(image, dtype=np.uint8), None
    alpha = None
    if image.mode in ("LA", "RGBA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        alpha = np.asarray(image.getchannel("A")) > 0
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return rgb[:, :, 0].copy(), None if alpha is None or alpha.all() else alpha


def tiff_hints(image: Image.Image) -> tuple[float | None, Scale | None]:
    """The nodata value (GDAL_NODATA) and a forced scale (GDAL_METADATA `scale` item) of a TIFF, if any."""
    tags = getattr(image, "tag_v2", None)
    if tags is None:
        return None, None
    nodata: float | None = None
    raw = tags.get(GDAL_NODATA_TAG)
    if raw is not None:
        try:
            nodata = float(str(raw).strip().strip("\x00"))
        except ValueError:
            nodata = None
    scale: Scale | None = None
    match = _SCALE_ITEM.search(str(tags.get(GDAL_METADATA_TAG, "")))
    if match and match.group(1).lower() in Scale._value2member_map_:
        scale = Scale(match.group(1).lower())
    return nodata, scale


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, scale: Scale = Scale.AUTO) -> ModelInput:
    """Bytes of a PNG/JPEG/TIFF (8/16-bit, float, grey/RGB/RGBA) to the model's input, or raise ImageError.

    `scale` is the service's setting; a TIFF's own `scale` item wins over `auto` only.
    """
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
        nodata, tagged_scale = tiff_hints(image)
        try:
            image.load()
            band, alpha = pixel_band(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(413, f"image has too many pixels (limit {max_pixels}): {exc}") from exc
        except MemoryError:
            raise
        except Exception as exc:  # truncated data, bad chunks, unsupported modes...
            raise ImageError(400, f"truncated or corrupt {image.format} image: {exc}") from exc
    if band.shape != (height, width):
        raise ImageError(400, f"decoded shape {band.shape} does not match declared {width}x{height}")
    if scale is Scale.AUTO and tagged_scale is not None:
        scale = tagged_scale
    return convert(band, scale, nodata, alpha)
