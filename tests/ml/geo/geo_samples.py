"""Synthetic GeoTIFFs made in code for the ml.geo tests: GDAL-written files and struct-packed hostile ones.

A plain module (not conftest) so that test modules import it by a name no other conftest.py shares.

Scenes are near 27 N 51 E (the Persian Gulf, at sea) unless a test moves them; slicks are ellipses whose exact
outline is known, so polygons can be compared with the truth.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

SHORT, LONG, ASCII, DOUBLE = 3, 4, 2, 12
_FORMATS = {SHORT: "H", LONG: "I", DOUBLE: "d"}


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in continuous pixel coordinates (col, row), `angle` in degrees from the column axis."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float = 0.0

    def mask(self, height: int, width: int) -> np.ndarray:
        """Pixels whose centre is inside."""
        rows, cols = np.mgrid[0:height, 0:width] + 0.5
        t = np.deg2rad(self.angle)
        u = (cols - self.cx) * np.cos(t) + (rows - self.cy) * np.sin(t)
        v = -(cols - self.cx) * np.sin(t) + (rows - self.cy) * np.cos(t)
        return (u / self.a) ** 2 + (v / self.b) ** 2 <= 1.0

    def outline(self, n: int = 4000) -> np.ndarray:
        """(n, 2) points (col, row) on the ellipse, counter-clockwise in (x, y) numbers."""
        s = np.linspace(0, 2 * np.pi, n, endpoint=False)
        t = np.deg2rad(self.angle)
        u, v = self.a * np.cos(s), self.b * np.sin(s)
        return np.column_stack(
            [self.cx + u * np.cos(t) - v * np.sin(t), self.cy + u * np.sin(t) + v * np.cos(t)]
        )


def geotiff_bytes(
    bands: np.ndarray | Sequence[np.ndarray],
    *,
    crs: Any = None,
    transform: Any = None,
    gcps: Sequence[GroundControlPoint] | None = None,
    gcp_crs: Any = "EPSG:4326",
    nodata: float | None = None,
    descriptions: Sequence[str | None] | None = None,
    tags: dict[str, str] | None = None,
    **creation: Any,
) -> bytes:
    """A GeoTIFF written by GDAL (rasterio) into memory."""
    arrays = [bands] if isinstance(bands, np.ndarray) and bands.ndim == 2 else list(bands)
    height, width = arrays[0].shape
    profile: dict[str, Any] = {"driver": "GTiff", "width": width, "height": height, "count": len(arrays)}
    profile.update(dtype=arrays[0].dtype, nodata=nodata, **creation)
    if crs is not None and gcps is None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    with warnings.catch_warnings(), MemoryFile() as memfile:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with memfile.open(**profile) as dst:
            if gcps is not None:
                dst.gcps = (list(gcps), rasterio.crs.CRS.from_user_input(gcp_crs))
            for index, array in enumerate(arrays, start=1):
                dst.write(array, index)
            for index, text in enumerate(descriptions or (), start=1):
                if text is not None:
                    dst.set_band_description(index, text)
            if tags:
                dst.update_tags(**tags)
        return bytes(memfile.read())


def _entry_bytes(kind: int, values: Sequence[float] | bytes) -> bytes:
    if kind == ASCII:
        assert isinstance(values, bytes)
        return values
    return struct.pack("<" + _FORMATS[kind] * len(values), *values)


def classic_tiff(
    entries: Sequence[tuple[int, int, Sequence[float] | bytes]],
    *,
    pixel_data: bytes = b"",
    ifd_count: int = 1,
    loop: bool = False,
) -> bytes:
    """A little-endian classic TIFF, struct-packed: header, pixel data, then `ifd_count` copies of one IFD.

    `entries` are (tag, type, values); StripOffsets (273) may be given as [0]: it is pointed at `pixel_data`.
    With `loop`, the last IFD points back at the first.
    """
    data_offset = 8
    out_of_line = bytearray()
    area_start = data_offset + len(pixel_data)
    encoded: list[tuple[int, int, int, bytes]] = []
    for tag, kind, values in sorted(entries, key=lambda e: e[0]):
        if tag == 273:
            values = [data_offset]
        raw = _entry_bytes(kind, values)
        count = len(values)
        if len(raw) > 4:
            offset = area_start + len(out_of_line)
            out_of_line += raw + (b"\x00" if len(raw) % 2 else b"")
            raw = struct.pack("<I", offset)
        encoded.append((tag, kind, count, raw.ljust(4, b"\x00")))
    ifd_start = area_start + len(out_of_line)
    ifd_size = 2 + 12 * len(encoded) + 4
    body = bytearray()
    for i in range(ifd_count):
        nxt = ifd_start + (i + 1) * ifd_size if i + 1 < ifd_count else (ifd_start if loop else 0)
        body += struct.pack("<H", len(encoded))
        for tag, kind, count, raw in encoded:
            body += struct.pack("<HHI", tag, kind, count) + raw
        body += struct.pack("<I", nxt)
    header = b"II*\x00" + struct.pack("<I", ifd_start)
    return header + pixel_data + bytes(out_of_line) + bytes(body)


def strip_entries(width: int, height: int, byte_count: int | None = None) -> list[tuple[int, int, Any]]:
    """The tags of a one-strip, 8-bit, one-sample image."""
    count = width * height if byte_count is None else byte_count
    return [
        (256, LONG, [width]),
        (257, LONG, [height]),
        (258, SHORT, [8]),
        (259, SHORT, [1]),
        (262, SHORT, [1]),
        (273, LONG, [0]),
        (277, SHORT, [1]),
        (278, LONG, [height]),
        (279, LONG, [count]),
    ]


# 10 m pixels in UTM 39N, the top-left corner near 27.03 N 51.99 E (the Persian Gulf).
UTM_TRANSFORM = rasterio.Affine(10.0, 0.0, 600_000.0, 0.0, -10.0, 2_990_000.0)
