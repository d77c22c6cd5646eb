"""Decode uploaded image bytes into the model's input, refusing bad input with an HTTP-style status.

TIFFs (GeoTIFF, COG, Sentinel-1 measurement files) are read by GDAL through ml.geo.raster, safely (GTiff
driver only, limits checked from the TIFF structure first), with their georeferencing, nodata and acquisition
time; PNG and JPEG by Pillow, whose header is parsed and the declared pixel count checked before any pixel
is decoded, so a small file that declares a gigantic canvas never allocates its buffer. The pixels keep their
own type (8/16-bit integers, 32-bit floats) until ml.radiometry converts them; an alpha channel marks
transparent pixels as nodata, and a GeoTIFF's metadata item `scale` may force how its numbers are read.

Pure (no FastAPI): the service maps `ImageError` to a JSON error, the evaluation CLI lets it propagate.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ml.budget import DEFAULT_TILE, check_jpeg_scans, check_work
from ml.geo.georef import Georef
from ml.geo.raster import looks_like_tiff, read_geotiff
from ml.image_errors import DEFAULT_MAX_PIXELS, ImageError
from ml.radiometry import ModelInput, Scale, convert
from ml.scene.convert import converted_as_scene
from ml.scene.land import LandCells

# Pillow modes whose pixels are numbers of another type than uint8 (kept as they are for ml.radiometry).
_NUMERIC_MODES = {"I;16": np.uint16, "I;16L": np.uint16, "I;16B": np.uint16, "I;16S": np.int16, "I": np.int32}


@dataclass(frozen=True)
class Decoded:
    """An upload ready for the model, and where it lies on Earth when its file says so."""

    image: ModelInput
    georef: Georef | None = None
    georef_reason: str | None = None  # why `georef` is None
    acquired: str | None = None  # ISO 8601 UTC, from the file's tags


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


def decode(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    scale: Scale = Scale.AUTO,
    tile: int = DEFAULT_TILE,
    *,
    range_trend: bool = False,
    land_of: Callable[[Georef, int, int], LandCells] | None = None,
) -> Decoded:
    """Bytes of a TIFF/GeoTIFF, PNG or JPEG to the model's input (and georeference), or raise ImageError.

    `scale` is the service's setting; a GeoTIFF's own `scale` metadata item wins over `auto` only. The
    model's work (ml.budget: pixels after padding to `tile`, JPEG scans) is checked before decoding.
    `range_trend`: a (Geo)TIFF wide enough has its fall across the columns removed, as a scene has
    (ml.scene.range_trend); where `land_of(georef, height, width)` finds land, the trend and the stretch
    are fitted on the sea alone. Pictures (PNG, JPEG) are renderings, converted as they are.
    """
    if not data:
        raise ImageError(400, "empty file: the upload has no bytes")
    if looks_like_tiff(data):
        raster = read_geotiff(data, max_pixels=max_pixels)
        check_work(raster.band.shape[1], raster.band.shape[0], max_pixels, tile)
        tagged = {k.lower(): v.strip().lower() for k, v in raster.tags.items()}.get("scale")
        if scale is Scale.AUTO and tagged is not None and tagged in Scale._value2member_map_:
            scale = Scale(tagged)
        height, width = raster.band.shape
        land = land_of(raster.georef, height, width) if land_of and raster.georef else None
        image = converted_as_scene(
            raster.band, raster.valid, scale, raster.nodata, land, range_trend=range_trend
        )
        if image is None:
            image = convert(raster.band, scale, raster.nodata, raster.valid)
        return Decoded(image, raster.georef, raster.georef_reason, raster.acquired)
    check_jpeg_scans(data)
    return Decoded(_decode_picture(data, max_pixels, scale, tile), None, "not a GeoTIFF")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, scale: Scale = Scale.AUTO) -> ModelInput:
    """The model's input alone (evaluation, benches)."""
    return decode(data, max_pixels, scale).image


def _decode_picture(data: bytes, max_pixels: int, scale: Scale, tile: int) -> ModelInput:
    """PNG or JPEG (or any other format Pillow knows) through Pillow, at the same pixel limit as GeoTIFFs."""
    configure_pixel_limit(max_pixels)  # Pillow's own default (179 MP, its own message) must not decide
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
        check_work(width, height, max_pixels, tile)
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
    return convert(band, scale, None, alpha)
