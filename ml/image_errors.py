"""The one error every image reader raises, with the HTTP status the client gets, and the pixel limit.

Its own module, so the readers (ml.imaging for PNG/JPEG, ml.geo.raster for GeoTIFF) and the service share it
without importing each other.
"""

from __future__ import annotations

DEFAULT_MAX_PIXELS = 400_000_000


class ImageError(Exception):
    """An upload that cannot be segmented; `status_code` says which 4xx the client gets."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
