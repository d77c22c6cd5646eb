"""What the worker keeps of the ML service's answer for one image: its result record and its part's files.

The PNGs are checked by their headers (backend.worker.image_checks), the COG mask by its TIFF header (the
input's size), and the slicks collection is renamed after the image's path in the upload
(backend.storage.slicks.image_collection): the service only knew the base name the worker sent.
"""

from __future__ import annotations

from backend.jobs.models import ImageGeo, ImageResult
from backend.storage import parts
from backend.storage.slicks import image_collection
from backend.worker import image_checks
from backend.worker.ml_client import Segmentation

TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders


def checked_outputs(
    name: str, output: str, size: tuple[int, int], segmentation: Segmentation
) -> tuple[ImageResult, parts.Outputs]:
    """The service's files checked against the input's size (width, height): the image's result and the
    files to store. ValueError if one of them is not what it should be."""
    oil = image_checks.check_mask(segmentation.mask_png, size, segmentation.oil_pixels)
    image_checks.check_png(segmentation.overlay_png, size, "P", "overlay")
    if segmentation.mask_tif is not None:
        check_geo_mask(segmentation.mask_tif, size)
    slicks = segmentation.slicks_geojson
    geo = segmentation.geo
    result = ok_result(name, output, size, oil).model_copy(
        update={
            "scale": segmentation.scale,
            "valid_fraction": segmentation.valid_fraction,
            "geo": ImageGeo.model_validate(geo.model_dump()) if geo is not None else None,
        }
    )
    files = parts.Outputs(
        output,
        segmentation.mask_png,
        segmentation.overlay_png,
        slicks_geojson=image_collection(slicks, name) if slicks is not None else None,
        mask_tif=segmentation.mask_tif,
    )
    return result, files


def check_geo_mask(tif: bytes, size: tuple[int, int]) -> None:
    """ValueError unless `tif` is a TIFF of `size` (width, height); its header only, no pixel decoded."""
    if not tif.startswith(TIFF_SIGNATURES):
        raise ValueError("ML service returned an unreadable COG mask: not a TIFF file")
    try:
        got = image_checks.image_size(tif)
    except ValueError as exc:
        raise ValueError(f"ML service returned an unreadable COG mask: {exc}") from exc
    if got != size:
        raise ValueError(f"ML service returned a {got[0]}x{got[1]} COG mask for a {size[0]}x{size[1]} image")


def ok_result(name: str, output: str, size: tuple[int, int], oil: int) -> ImageResult:
    width, height = size
    return ImageResult(
        name=name,
        output=output,
        status="ok",
        width=width,
        height=height,
        oil_pixels=oil,
        oil_fraction=oil / (width * height),
    )


def failed_result(name: str, output: str, error: str) -> ImageResult:
    return ImageResult(name=name, output=output, status="failed", error=error)
