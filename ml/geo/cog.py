"""The oil mask as a Cloud-Optimized GeoTIFF (masks/<name>.tif), aligned with the input image.

Values are 0 (no oil) and 255 (oil), uint8, one band named "oil_mask". Nodata is kept as GDAL's **internal
per-dataset mask** (0 = nodata), not as a nodata value: the pixel values stay strictly 0/255 (a declared
nodata value would have to be a third number, or 0, which would make "sea" and "no data" the same), and
GDAL-based tools (QGIS, rasterio, gdalinfo) honour the mask, while a reader that ignores it sees nodata as 0 =
"no oil", the safe reading. No mask is written when every pixel is valid.

The georeferencing is the input's: its CRS with its affine transform, or its GCPs (Sentinel-1 GRD), never an
invented one; without a Georef the COG has none. GDAL's COG driver (bundled with rasterio's GDAL >= 3.1)
writes the layout: 512 x 512 DEFLATE tiles, overviews by nearest neighbour (values stay 0/255) down to one
tile, the mask's tiles and overviews alongside. Written into a /vsimem MemoryFile and returned as bytes.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from ml.geo.georef import Georef

BLOCKSIZE = 512
_COG_OPTIONS: dict[str, Any] = {
    "BLOCKSIZE": BLOCKSIZE,
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "NO",
    "LEVEL": 6,
    "OVERVIEW_RESAMPLING": "NEAREST",
    "BIGTIFF": "IF_SAFER",
    "NUM_THREADS": "1",
}


def write_mask_cog(mask: np.ndarray, valid: np.ndarray | None = None, georef: Georef | None = None) -> bytes:
    """A uint8 mask (>= 128 = oil) as COG bytes: 0/255, nodata as internal mask, the input's georeference."""
    if mask.ndim != 2:
        raise ValueError("mask must be 2-D")
    height, width = mask.shape
    if valid is not None and valid.shape != mask.shape:
        raise ValueError("valid must have the mask's shape")
    if georef is not None and (georef.width, georef.height) != (width, height):
        raise ValueError(f"georef is for {georef.width}x{georef.height}, mask is {width}x{height}")
    values = np.where(mask >= 128, np.uint8(255), np.uint8(0))
    if valid is not None:
        values[~valid] = 0
    profile: dict[str, Any] = {"width": width, "height": height, "count": 1, "dtype": "uint8", **_COG_OPTIONS}
    if georef is not None and georef.transform is not None:
        profile.update(crs=georef.rasterio_crs(), transform=georef.rasterio_transform())
    with (
        rasterio.Env(GDAL_PAM_ENABLED="NO", GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
        warnings.catch_warnings(),
        MemoryFile(ext="tif") as memfile,
    ):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with memfile.open(driver="COG", **profile) as dst:
            if georef is not None and georef.gcps:
                dst.gcps = (georef.rasterio_gcps(), georef.rasterio_crs())
            dst.write(values, 1)
            dst.set_band_description(1, "oil_mask")
            if valid is not None and not valid.all():
                dst.write_mask(valid)
        return bytes(memfile.read())
