"""Read an uploaded GeoTIFF/COG from bytes, treating it as hostile: GDAL is a large C library.

Defences, in order, all before GDAL decodes a pixel:
1. `looks_like_tiff`: the bytes start with a TIFF or BigTIFF header, so a VRT (XML that can point GDAL at
   local files or URLs), a PNG or a zip renamed `.tif` is refused as 400 without reaching GDAL.
2. `scan_tiff` walks the IFD chain itself (numpy on the raw bytes, no GDAL): a loop, an IFD beyond the end of
   the file or an IFD without size is 400; more than `max_ifds` IFDs (SubIFDs counted too), a declared canvas
   above `max_pixels` or more than `max_bands` samples per pixel is 413. A file with thousands of IFDs is
   refused after reading `max_ifds` of them, a 100,000 x 100,000 canvas without allocating anything.
3. GDAL opens the bytes from a `rasterio.MemoryFile` (/vsimem) with `driver=["GTiff"]` only (the COG driver is
   a writer: COGs are read by GTiff), under `SAFE_GDAL_OPTIONS`: no directory listing or side files (.ovr,
   .aux.xml, .msk, world files), georeferencing from the file itself only, no HTTP. Width, height and band
   count are checked again as GDAL sees them.

Then one band is read in its own dtype (uint8, uint16, int16, float32 ...; ml.radiometry converts it): the
band whose description or POLARISATION tag says VV (case-insensitive, as a word: "VV", "Sigma0_VV"), else
band 1. The valid mask comes from GDAL's mask for that band (nodata value, internal mask, alpha) and, for
floats, the finite values; it is None when every pixel is valid. GDAL's errors surface as
`ml.imaging.ImageError` 400.
"""

from __future__ import annotations

import mmap
import re
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader, MemoryFile

from ml.geo.georef import Georef, georef_from_dataset
from ml.image_errors import DEFAULT_MAX_PIXELS, ImageError

DEFAULT_MAX_BANDS = 16
# A COG of a full Sentinel-1 scene holds ~8 IFDs (image, overviews, their masks); multi-page stacks a few
# more.
DEFAULT_MAX_IFDS = 64

SAFE_GDAL_OPTIONS: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # never list the directory, so no sibling file is looked for
    "GDAL_PAM_ENABLED": "NO",  # no .aux.xml side files read or written
    "GDAL_GEOREF_SOURCES": "INTERNAL",  # georeferencing from the TIFF tags only, never .tfw/.tab files
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".no-remote-access",  # /vsicurl/ would refuse every file name
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "PROJ_NETWORK": "OFF",  # no PROJ grid downloads
    "GDAL_NUM_THREADS": "1",  # the worker pool sets the parallelism, not GDAL
}

_MIN_BLOCK_LIMIT = 1024 * 1024  # a small image may still have ordinary 512 x 512 tiles
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_TAG_WIDTH, _TAG_HEIGHT, _TAG_SAMPLES, _TAG_SUBIFDS = 256, 257, 277, 330
_VV = re.compile(r"(?<![a-z])vv(?![a-z])", re.IGNORECASE)
# Tags that carry the acquisition time, best first. TIFFTAG_DATETIME is the file's creation time by the TIFF
# spec, often the processing time, hence last.
_TIME_TAGS = (
    "ACQUISITION_START_TIME",
    "ACQUISITION_TIME",
    "ACQUISITION_DATE",
    "SENSING_START",
    "START_TIME",
    "FIRST_LINE_TIME",
    "DATE_ACQUIRED",
    "TIFFTAG_DATETIME",
)


@dataclass(frozen=True)
class TiffLayout:
    """What `scan_tiff` learnt from the TIFF structure alone."""

    bigtiff: bool
    little_endian: bool
    ifd_count: int
    width: int
    height: int
    samples_per_pixel: int


@dataclass(frozen=True)
class GeoRaster:
    """One band of an uploaded GeoTIFF, ready for ml.radiometry and ml.geo.vectorise."""

    band: np.ndarray  # (height, width), the file's own dtype
    band_index: int  # 1-based, as GDAL counts
    band_description: str | None
    band_count: int
    nodata: float | None
    valid: np.ndarray | None  # bool (height, width), True = valid pixel; None when all are valid
    georef: Georef | None
    georef_reason: str | None  # why `georef` is None ("no georeferencing ...", "unusable CRS ...")
    acquired: str | None  # ISO 8601 UTC ("2023-01-15T03:14:15Z") or None
    acquired_tag: str | None  # the tag `acquired` came from
    tags: dict[str, str] = field(
        default_factory=dict
    )  # dataset-level metadata (GDAL_METADATA items, TIFF tags)

    @property
    def georeferenced(self) -> bool:
        return self.georef is not None


def looks_like_tiff(data: bytes | mmap.mmap) -> bool:
    """True when `data` starts with a classic (II*\\0, MM\\0*) or BigTIFF (II+\\0, MM\\0+) header."""
    return data[:4] in _TIFF_MAGICS


def scan_tiff(data: bytes | mmap.mmap, *, max_ifds: int = DEFAULT_MAX_IFDS) -> TiffLayout:
    """Walk the TIFF's IFD chain without GDAL; raise ImageError 400 (corrupt) or 413 (too many IFDs).

    `data` may be a file's mmap (ml.scene.source): only the IFDs' pages are read.
    """
    if not looks_like_tiff(data):
        raise ImageError(400, "not a TIFF: the file does not start with a TIFF or BigTIFF header")
    little = data[:2] == b"II"
    bo = "<" if little else ">"
    bigtiff = data[2:4] in (b"+\x00", b"\x00+")
    if bigtiff:
        if len(data) < 16:
            raise ImageError(400, "corrupt TIFF: truncated BigTIFF header")
        offset = int.from_bytes(data[8:16], "little" if little else "big")
        count_size, entry_size, off_size = 8, 20, 8
        entry_dtype = np.dtype(
            [("tag", bo + "u2"), ("type", bo + "u2"), ("count", bo + "u8"), ("value", "V8")]
        )
    else:
        if len(data) < 8:
            raise ImageError(400, "corrupt TIFF: truncated header")
        offset = int.from_bytes(data[4:8], "little" if little else "big")
        count_size, entry_size, off_size = 2, 12, 4
        entry_dtype = np.dtype(
            [("tag", bo + "u2"), ("type", bo + "u2"), ("count", bo + "u4"), ("value", "V4")]
        )
    order: Literal["little", "big"] = "little" if little else "big"
    seen: set[int] = set()
    ifd_count = 0
    first: np.ndarray | None = None
    while offset:
        if offset in seen:
            raise ImageError(400, f"corrupt TIFF: IFD loop at offset {offset}")
        seen.add(offset)
        if offset + count_size > len(data):
            raise ImageError(400, f"corrupt TIFF: IFD at offset {offset} is beyond the end of the file")
        n = int.from_bytes(data[offset : offset + count_size], order)
        end = offset + count_size + n * entry_size
        if n == 0 or end + off_size > len(data):
            raise ImageError(400, f"corrupt TIFF: IFD at offset {offset} is empty or truncated")
        entries = np.frombuffer(data, dtype=entry_dtype, count=n, offset=offset + count_size)
        subifds = entries["count"][entries["tag"] == _TAG_SUBIFDS]
        ifd_count += 1 + int(subifds.sum())
        if ifd_count > max_ifds:
            raise ImageError(413, f"TIFF has more than {max_ifds} IFDs (pages, overviews, SubIFDs)")
        if first is None:
            first = entries
        offset = int.from_bytes(data[end : end + off_size], order)
    if first is None:
        raise ImageError(400, "corrupt TIFF: no image file directory")
    width = _inline_int(first, _TAG_WIDTH, order)
    height = _inline_int(first, _TAG_HEIGHT, order)
    if not width or not height:
        raise ImageError(400, "corrupt TIFF: the first IFD declares no image width or height")
    samples = _inline_int(first, _TAG_SAMPLES, order) or 1
    return TiffLayout(bigtiff, little, ifd_count, width, height, samples)


def _inline_int(entries: np.ndarray, tag: int, order: Literal["little", "big"]) -> int | None:
    """An IFD entry's first value when it is an inline SHORT (3), LONG (4) or LONG8 (16)."""
    hits = entries[entries["tag"] == tag]
    if len(hits) == 0 or int(hits[0]["count"]) < 1:
        return None
    kind, raw = int(hits[0]["type"]), bytes(hits[0]["value"])
    size = {3: 2, 4: 4, 16: 8}.get(kind)
    if size is None or size > len(raw):
        return None
    # Inline values are left-justified in the value field whatever the byte order.
    return int.from_bytes(raw[:size], order)


def check_limits(width: int, height: int, bands: int, *, max_pixels: int, max_bands: int) -> None:
    """Raise ImageError 413 for a canvas or band count over the limits."""
    if width * height > max_pixels:
        raise ImageError(413, f"image is {width}x{height} pixels, more than the limit of {max_pixels:,}")
    if bands > max_bands:
        raise ImageError(413, f"image has {bands} bands, more than the limit of {max_bands}")


def read_geotiff(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bands: int = DEFAULT_MAX_BANDS,
    max_ifds: int = DEFAULT_MAX_IFDS,
) -> GeoRaster:
    """Read one band of a GeoTIFF/COG from bytes, safely; ImageError 400 (bad file) or 413 (over limits)."""
    layout = scan_tiff(data, max_ifds=max_ifds)
    check_limits(
        layout.width, layout.height, layout.samples_per_pixel, max_pixels=max_pixels, max_bands=max_bands
    )
    try:
        with (
            rasterio.Env(**SAFE_GDAL_OPTIONS),
            warnings.catch_warnings(),
            MemoryFile(data, ext="tif") as memfile,
        ):
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with memfile.open(driver=["GTiff"]) as src:
                return _read(src, max_pixels=max_pixels, max_bands=max_bands)
    except (RasterioError, CPLE_BaseError) as exc:  # GDAL's errors come as either
        raise ImageError(400, f"unreadable GeoTIFF: {_gdal_message(exc)}") from exc


def _read(src: DatasetReader, *, max_pixels: int, max_bands: int) -> GeoRaster:
    check_limits(src.width, src.height, src.count, max_pixels=max_pixels, max_bands=max_bands)
    if src.count < 1:
        raise ImageError(400, "GeoTIFF has no raster band")
    index = choose_band(src)
    block_h, block_w = src.block_shapes[index - 1]
    if block_h * block_w > max(src.width * src.height, _MIN_BLOCK_LIMIT):
        # GDAL allocates a whole block to decode it: a 64 x 64 image may declare 2^31-pixel tiles.
        raise ImageError(413, f"tiles or strips of {block_w}x{block_h} pixels are larger than the image")
    band = src.read(index)
    nodata = src.nodatavals[index - 1]
    valid: np.ndarray | None = None
    if not all(flag.name == "all_valid" for flag in src.mask_flag_enums[index - 1]):
        valid = src.read_masks(index) != 0
    if np.issubdtype(band.dtype, np.floating):
        finite = np.isfinite(band)
        valid = finite if valid is None else valid & finite
    if valid is not None and valid.all():
        valid = None
    georef, reason = georef_from_dataset(src)
    tags = {str(k): str(v) for k, v in src.tags().items()}
    acquired, acquired_tag = acquisition_time({**tags, **src.tags(index)})
    return GeoRaster(
        band=band,
        band_index=index,
        band_description=src.descriptions[index - 1],
        band_count=src.count,
        nodata=None if nodata is None else float(nodata),
        valid=valid,
        georef=georef,
        georef_reason=reason,
        acquired=acquired,
        acquired_tag=acquired_tag,
        tags=tags,
    )


def choose_band(src: DatasetReader) -> int:
    """1-based index of the band whose description or POLARISATION tag says VV, else 1."""
    for index in range(1, src.count + 1):
        band_tags = {k.upper(): v for k, v in src.tags(index).items()}
        labels = [
            src.descriptions[index - 1] or "",
            band_tags.get("POLARISATION", ""),
            band_tags.get("POLARIZATION", ""),
        ]
        if any(_VV.search(label) for label in labels):
            return index
    return 1


def acquisition_time(tags: dict[str, str]) -> tuple[str | None, str | None]:
    """(ISO 8601 UTC time, tag name) from the first tag of `_TIME_TAGS` that parses, else (None, None)."""
    upper = {k.upper(): v for k, v in tags.items()}
    for name in _TIME_TAGS:
        value = upper.get(name)
        parsed = parse_time(value) if value else None
        if parsed is not None:
            return parsed, name
    return None, None


def parse_time(value: str) -> str | None:
    """'2023:01:15 03:14:15' (TIFF), ISO 8601 with or without zone or fraction -> '2023-01-15T03:14:15Z'.

    A time without zone is taken as UTC (satellite metadata is UTC); one with a zone is converted to UTC.
    """
    text = value.strip().rstrip("\x00").strip()
    if re.fullmatch(r"\d{4}:\d{2}:\d{2}[ T]\d{2}:\d{2}:\d{2}", text):
        text = text[:10].replace(":", "-") + "T" + text[11:]
    text = re.sub(r"Z$", "+00:00", text, flags=re.IGNORECASE)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _gdal_message(exc: BaseException) -> str:
    """GDAL's innermost message (rasterio chains "see previous exception"), without paths of GDAL's own."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = re.sub(r"'?/vsimem/[^\s']*'?\s*", "", str(exc))
    text = re.sub(r"/project/[^\s,]*,\s*\d+:\s*", "", text)  # GDAL's source file and line
    return text.strip() or type(exc).__name__
