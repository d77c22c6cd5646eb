"""A chord member's inputs: each image read back from upload.zip by its entry record, grouped into requests.

Only headers are parsed (the size, for the pixel limit and the request budget): the worker decodes no image.
"""

from __future__ import annotations

from typing import BinaryIO

from backend.core.config import MB, settings
from backend.upload.entries import ZipEntry, read_entry
from backend.worker import image_checks

Input = tuple[bytes, tuple[int, int]]  # an uploaded image's bytes and its (width, height)


def read_input(archive: BinaryIO, record: str | None) -> Input:
    """An image's bytes, read from the open upload.zip by its entry record, and its (width, height).

    ValueError if it cannot be sent to the service: no record, an unreadable entry, an unreadable image
    header (parsed without decoding a pixel) or more than MAX_IMAGE_PIXELS.
    """
    if record is None:
        raise ValueError("cannot read image: no record of where it lies in the uploaded zip")
    try:
        data = read_entry(archive, ZipEntry.from_record(record), settings.MAX_UNCOMPRESSED_MB * MB)
    except ValueError as exc:
        raise ValueError(f"cannot read image from the uploaded zip: {exc}") from exc
    try:
        size = image_checks.image_size(data)
    except ValueError as exc:
        raise ValueError(f"cannot read image: {exc}") from exc
    if size[0] * size[1] > settings.MAX_IMAGE_PIXELS:
        raise ValueError(
            f"image has {size[0]}x{size[1]} pixels, over the limit of {settings.MAX_IMAGE_PIXELS}"
        )
    return data, size


def split_by_pixels(inputs: dict[str, Input], budget: int) -> list[dict[str, Input]]:
    """Consecutive groups of `inputs` of at most `budget` pixels each (an image over it goes alone).

    A request's time grows with its pixels, not its bytes: sixteen well-compressed large scenes in one request
    would outlast ML_TIMEOUT_SECONDS where each alone would not.
    """
    groups: list[dict[str, Input]] = []
    group: dict[str, Input] = {}
    pixels = 0
    for name, (data, (width, height)) in inputs.items():
        if group and pixels + width * height > budget:
            groups.append(group)
            group, pixels = {}, 0
        group[name] = (data, (width, height))
        pixels += width * height
    if group:
        groups.append(group)
    return groups
