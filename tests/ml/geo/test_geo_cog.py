"""ml.geo.cog: the 0/255 mask as a COG aligned with its input (same CRS and transform, or GCPs)."""

from __future__ import annotations

import numpy as np
import pytest
from geo_samples import UTM_TRANSFORM, Ellipse
from rasterio.crs import CRS
from rasterio.io import MemoryFile

from ml.geo.cog import write_mask_cog
from ml.geo.georef import Georef
from ml.geo.raster import read_geotiff

H, W = 1100, 1300


def utm_georef() -> Georef:
    return Georef(W, H, CRS.from_epsg(32639).to_wkt(), 32639, transform=tuple(UTM_TRANSFORM)[:6])


def gcp_georef() -> Georef:
    gcps = tuple(
        (c, r, 51.0 + 1.1e-4 * c + 2e-5 * r, 27.5 - 9e-5 * r + 1.5e-5 * c, 0.0)
        for r in np.linspace(0, H, 5)
        for c in np.linspace(0, W, 6)
    )
    return Georef(W, H, CRS.from_epsg(4326).to_wkt(), 4326, gcps=gcps)


def scene() -> tuple[np.ndarray, np.ndarray]:
    oil = Ellipse(cx=600, cy=500, a=300, b=90, angle=20).mask(H, W)
    mask = np.where(oil, 255, 0).astype(np.uint8)
    valid = np.ones((H, W), dtype=bool)
    valid[:, :60] = False
    mask[:, :60] = 255  # whatever the model said under nodata is not kept
    return mask, valid


def test_cog_layout_values_and_nodata_mask() -> None:
    mask, valid = scene()
    data = write_mask_cog(mask, valid, utm_georef())
    with MemoryFile(data) as memfile, memfile.open() as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.profile["tiled"] and src.block_shapes[0] == (512, 512)
        assert src.overviews(1) == [2, 4]
        assert (src.width, src.height, src.count, src.dtypes[0]) == (W, H, 1, "uint8")
        assert src.crs.to_epsg() == 32639 and src.transform == UTM_TRANSFORM
        assert src.descriptions[0] == "oil_mask" and src.nodata is None
        values = src.read(1)
        assert set(np.unique(values)) <= {0, 255}
        np.testing.assert_array_equal(values[valid], mask[valid])
        assert not values[~valid].any()
        np.testing.assert_array_equal(src.read_masks(1) != 0, valid)
        overview = src.read(1, out_shape=(H // 4, W // 4))
        assert set(np.unique(overview)) <= {0, 255}


def test_cog_carries_the_gcps() -> None:
    mask, valid = scene()
    georef = gcp_georef()
    with MemoryFile(write_mask_cog(mask, valid, georef)) as memfile, memfile.open() as src:
        gcps, crs = src.gcps
        assert crs.to_epsg() == 4326 and src.transform.is_identity
        got = sorted((g.col, g.row, g.x, g.y) for g in gcps)
        want = sorted((c, r, x, y) for c, r, x, y, _ in georef.gcps)
        np.testing.assert_allclose(got, want, atol=1e-9)


def test_cog_reads_back_through_the_safe_reader() -> None:
    mask, valid = scene()
    raster = read_geotiff(write_mask_cog(mask, valid, gcp_georef()))
    assert raster.georef is not None and not raster.georef.is_affine
    assert raster.valid is not None
    np.testing.assert_array_equal(raster.valid, valid)
    lon, lat = raster.georef.pixel_to_lonlat(np.array([650.0]), np.array([550.0]))
    ex_lon, ex_lat = gcp_georef().pixel_to_lonlat(np.array([650.0]), np.array([550.0]))
    assert lon[0] == pytest.approx(ex_lon[0], abs=1e-9) and lat[0] == pytest.approx(ex_lat[0], abs=1e-9)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_all_valid_and_not_georeferenced() -> None:
    mask = np.zeros((300, 200), np.uint8)
    mask[100:150, 50:90] = 200  # >= 128 is oil
    with MemoryFile(write_mask_cog(mask)) as memfile, memfile.open() as src:
        assert src.crs is None and not src.gcps[0]
        assert [flag.name for flag in src.mask_flag_enums[0]] == ["all_valid"]
        assert int(src.read(1).sum()) == 255 * 50 * 40


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError):
        write_mask_cog(np.zeros((10, 10), np.uint8), np.ones((10, 11), bool))
    with pytest.raises(ValueError):
        write_mask_cog(np.zeros((10, 10), np.uint8), None, utm_georef())
