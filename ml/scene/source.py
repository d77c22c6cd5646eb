"""Open a scene file in place: the worker extracted it under the shared results folder; GDAL reads windows.

The same defences as an uploaded GeoTIFF (ml.geo.raster), for a file instead of bytes: the path must lie
inside ML_SCENE_DIR (resolved, so no `..` or symlink leads out), the file must start with a TIFF header and
pass `scan_tiff` (IFDs walked on an mmap, nothing decoded), and GDAL opens it with the GTiff driver only under
`SAFE_GDAL_OPTIONS`: a VRT renamed .tif never makes GDAL read other files.

The processing resolution: a georeferenced scene is read `factor` times decimated (GDAL picks the file's
overviews when it has them, else averages), `factor = round(resolution_m / pixel size)`, at least 1. The
`Georef` of the decimated grid is the file's, scaled: the mask written at that resolution stays exactly
georeferenced. A file without a nodata value (Sentinel-1 measurement TIFFs declare none: 0 is their fill) gets
its decimated pixels next to 0 marked nodata too, since GDAL averaged fill into them. The last
`height % factor` rows and `width % factor` columns (at most factor - 1 pixels, in the nodata border of a GRD
scene) are not read.
"""

from __future__ import annotations

import mmap
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from ml.geo.georef import Georef, georef_from_dataset
from ml.geo.raster import (
    DEFAULT_MAX_BANDS,
    SAFE_GDAL_OPTIONS,
    _gdal_message,
    acquisition_time,
    check_limits,
    choose_band,
    scan_tiff,
)
from ml.image_errors import ImageError

MAX_BLOCK_PIXELS = 4096 * 4096  # a scene's own tiles or strips; larger ones would be decoded whole
SAMPLE_BAND_ROWS = 16  # rows of the processing grid per band of `Scene.sample`


@dataclass(frozen=True)
class Scene:
    """An open scene at its processing resolution: `height` x `width` pixels of `factor` x `factor`."""

    src: DatasetReader
    band: int  # 1-based
    factor: int
    height: int
    width: int
    nodata: float | None
    georef: Georef | None
    georef_reason: str | None
    acquired: str | None
    tags: dict[str, str]

    def read(self, row0: int, row1: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [row0, row1) of the processing grid: (values in the file's dtype, valid bool)."""
        f = self.factor
        window = Window(0, row0 * f, self.width * f, (row1 - row0) * f)
        shape = (row1 - row0, self.width)
        values = self.src.read(self.band, window=window, out_shape=shape, resampling=Resampling.average)
        masks = self.src.read_masks(self.band, window=window, out_shape=shape, resampling=Resampling.nearest)
        valid = masks != 0
        if f > 1 and self.nodata is None and np.issubdtype(values.dtype, np.integer):
            valid &= ~next_to_fill(values == 0)
        return values, valid

    def sample(self, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
        """About `max_pixels` of the processing grid, for the scene's statistics: values, valid.

        Processing pixels, read as `read` reads them (averaged, the fill's neighbours invalid), in bands of
        rows spread evenly down the scene: the stretch must be fitted on the pixels the model is fed. Nearest
        samples of the file's own pixels carry more speckle than their averages (a GRD at 10 m read for 20 m:
        the 99th percentile ~2 dB higher), and a stretch fitted on them compressed the sea the model saw; a
        decimated read of a file with overviews is answered from an overview, averaged far more than the
        model's pixels, which narrowed the stretch instead (both at any decimation factor, 1 included).
        """
        reads = [self.read(row0, row1) for row0, row1 in self._sample_bands(max_pixels)]
        return np.concatenate([v for v, _ in reads]), np.concatenate([m for _, m in reads])

    def sample_rows(self, max_pixels: int) -> np.ndarray:
        """The processing rows `sample(max_pixels)` holds, in its order (to look up their land)."""
        return np.concatenate([np.arange(row0, row1) for row0, row1 in self._sample_bands(max_pixels)])

    def _sample_bands(self, max_pixels: int) -> list[tuple[int, int]]:
        """[row0, row1) of the sample's bands of SAMPLE_BAND_ROWS rows, spread evenly down the scene."""
        rows = min(SAMPLE_BAND_ROWS, self.height)
        bands = min(self.height // rows, max(1, -(-max_pixels // (rows * self.width))))
        starts = np.linspace(0, self.height - rows, bands).round().astype(int)
        return [(int(row0), int(row0) + rows) for row0 in starts]


def next_to_fill(fill: np.ndarray) -> np.ndarray:
    """Pixels that are fill or touch fill (4-neighbours): without a declared nodata value GDAL averages the
    0 border of a GRD file into its edge pixels, which come out darker, as a slick would."""
    near = fill.copy()
    near[1:] |= fill[:-1]
    near[:-1] |= fill[1:]
    near[:, 1:] |= fill[:, :-1]
    near[:, :-1] |= fill[:, 1:]
    return near


def resolve_inside(root: Path, relative: str) -> Path:
    """`relative` under `root`, 400 if it leads outside (`..`, an absolute path, a symlink) or is no file."""
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or path == base:
        raise ImageError(400, "scene path is outside the shared scene folder")
    if not path.is_file():
        raise ImageError(400, "scene file does not exist")
    return path


def decimation(georef: Georef | None, resolution_m: float) -> int:
    """Pixels per processing pixel along each axis: 1 without georeference or for resolution 0."""
    if georef is None or resolution_m <= 0:
        return 1
    size = min(georef.pixel_size_m())
    return max(1, round(resolution_m / size))


def scaled(georef: Georef, factor: int, width: int, height: int) -> Georef:
    """The georeference of the grid of `factor` x `factor` pixels (same CRS, same ground)."""
    if georef.transform is not None:
        a, b, c, d, e, f = georef.transform
        six = (a * factor, b * factor, c, d * factor, e * factor, f)
        return replace(georef, width=width, height=height, transform=six)
    gcps = tuple((col / factor, row / factor, x, y, z) for col, row, x, y, z in georef.gcps)
    return replace(georef, width=width, height=height, gcps=gcps)


@contextmanager
def open_scene(path: Path, *, max_pixels: int, resolution_m: float) -> Iterator[Scene]:
    """The scene at `path` (already resolved inside the scene folder); ImageError 400/413 when refused."""
    with path.open("rb") as file:
        try:
            view = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file cannot be mapped
            raise ImageError(400, "empty file: the scene has no bytes") from exc
        with view:
            layout = scan_tiff(view)
    check_limits(
        layout.width,
        layout.height,
        layout.samples_per_pixel,
        max_pixels=max_pixels,
        max_bands=DEFAULT_MAX_BANDS,
    )
    try:
        with rasterio.Env(**SAFE_GDAL_OPTIONS), warnings.catch_warnings():
            # Before the open, which is what warns: a scene without a georeference is processed as it is.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path, driver="GTiff") as src:  # the only driver allowed to open it
                yield _scene(src, max_pixels, resolution_m)
    except (RasterioError, CPLE_BaseError) as exc:
        raise ImageError(400, f"unreadable GeoTIFF: {_gdal_message(exc)}") from exc


def _scene(src: DatasetReader, max_pixels: int, resolution_m: float) -> Scene:
    check_limits(src.width, src.height, src.count, max_pixels=max_pixels, max_bands=DEFAULT_MAX_BANDS)
    if src.count < 1:
        raise ImageError(400, "GeoTIFF has no raster band")
    band = choose_band(src)
    block_h, block_w = src.block_shapes[band - 1]
    if block_h * block_w > MAX_BLOCK_PIXELS:
        raise ImageError(413, f"tiles or strips of {block_w}x{block_h} pixels: at most {MAX_BLOCK_PIXELS}")
    georef, reason = georef_from_dataset(src)
    factor = decimation(georef, resolution_m)
    height, width = src.height // factor, src.width // factor
    if height < 1 or width < 1:
        factor, height, width = 1, src.height, src.width
    if georef is not None and factor > 1:
        georef = scaled(georef, factor, width, height)
    tags = {str(k): str(v) for k, v in src.tags().items()}
    acquired, _ = acquisition_time({**tags, **src.tags(band)})
    nodata = src.nodatavals[band - 1]
    return Scene(
        src,
        band,
        factor,
        height,
        width,
        None if nodata is None else float(nodata),
        georef,
        reason,
        acquired,
        tags,
    )
