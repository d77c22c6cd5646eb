"""ml.geo.raster: GeoTIFF/COG bytes -> one band in its dtype, nodata, valid mask, Georef, acquisition time."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from geo_samples import classic_tiff, geotiff_bytes, strip_entries
from rasterio.control import GroundControlPoint

from ml.geo.raster import acquisition_time, looks_like_tiff, parse_time, read_geotiff, scan_tiff
from ml.image_errors import ImageError


@pytest.mark.parametrize("magic", [b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"])
def test_tiff_magics_are_recognised(magic: bytes) -> None:
    assert looks_like_tiff(magic + b"\x00" * 12)


@pytest.mark.parametrize(
    "data", [b"", b"II", b"<VRTDataset", b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"MM*\x00"]
)
def test_other_bytes_are_not_tiff(data: bytes) -> None:
    assert not looks_like_tiff(data)


def test_utm_uint8_scene_is_read_with_its_georeferencing(utm_transform: rasterio.Affine) -> None:
    band = np.arange(300 * 400, dtype=np.uint32).reshape(300, 400).astype(np.uint8)
    raster = read_geotiff(geotiff_bytes(band, crs="EPSG:32639", transform=utm_transform))
    assert raster.band.dtype == np.uint8
    np.testing.assert_array_equal(raster.band, band)
    assert raster.valid is None and raster.nodata is None
    assert raster.georef is not None and raster.georef_reason is None
    assert raster.georef.is_affine and raster.georef.epsg == 32639
    west, south, east, north = raster.georef.bounds()
    assert 51.9 < west < east < 52.1 and 26.9 < south < north < 27.1
    dx, dy = raster.georef.pixel_size_m()
    assert dx == pytest.approx(10.0, rel=1e-3) and dy == pytest.approx(10.0, rel=1e-3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_band_keeps_its_dtype(dtype: type) -> None:
    band = (np.arange(64 * 48).reshape(48, 64) % 120).astype(dtype)
    raster = read_geotiff(
        geotiff_bytes(band, crs="EPSG:4326", transform=rasterio.Affine(1e-4, 0, 51, 0, -1e-4, 27))
    )
    assert raster.band.dtype == dtype
    np.testing.assert_array_equal(raster.band, band)


def test_vv_band_is_chosen_by_description() -> None:
    vh, vv = np.full((8, 8), 1, np.uint16), np.full((8, 8), 2, np.uint16)
    raster = read_geotiff(geotiff_bytes([vh, vv], descriptions=["Sigma0_VH", "Sigma0_vv"]))
    assert raster.band_index == 2 and raster.band_description == "Sigma0_vv" and raster.band_count == 2
    assert int(raster.band[0, 0]) == 2


def test_band_1_without_a_vv_description() -> None:
    raster = read_geotiff(
        geotiff_bytes([np.ones((8, 8), np.uint8), np.zeros((8, 8), np.uint8)], descriptions=["HH"])
    )
    assert raster.band_index == 1 and int(raster.band[0, 0]) == 1


def test_gcp_uint16_grd_with_zero_nodata_border() -> None:
    band = np.full((200, 300), 400, np.uint16)
    band[:, :30] = 0
    band[-20:, :] = 0
    gcps = [
        GroundControlPoint(row=r, col=c, x=51.0 + c * 1e-4, y=27.5 - r * 9e-5, z=0.0)
        for r in (0, 100, 200)
        for c in (0, 150, 300)
    ]
    raster = read_geotiff(geotiff_bytes(band, gcps=gcps, nodata=0))
    assert raster.nodata == 0.0
    assert raster.valid is not None
    np.testing.assert_array_equal(raster.valid, band != 0)
    assert raster.georef is not None and not raster.georef.is_affine and raster.georef.epsg == 4326
    lon, lat = raster.georef.pixel_to_lonlat(np.array([150.0]), np.array([100.0]))
    assert lon[0] == pytest.approx(51.015, abs=1e-9) and lat[0] == pytest.approx(27.491, abs=1e-9)


def test_float_db_with_nan_and_value_nodata_borders(utm_transform: rasterio.Affine) -> None:
    band = np.full((64, 80), -22.0, np.float32)
    band[:4, :] = -9999.0
    band[:, -3:] = np.nan
    raster = read_geotiff(geotiff_bytes(band, crs="EPSG:32639", transform=utm_transform, nodata=-9999.0))
    assert raster.nodata == -9999.0 and raster.valid is not None
    expected = np.ones_like(raster.valid)
    expected[:4, :] = False
    expected[:, -3:] = False
    np.testing.assert_array_equal(raster.valid, expected)


def test_plain_tiff_is_not_georeferenced_with_a_reason() -> None:
    raster = read_geotiff(geotiff_bytes(np.zeros((10, 12), np.uint8)))
    assert raster.georef is None and not raster.georeferenced
    assert raster.georef_reason is not None and "no georeferencing" in raster.georef_reason


def test_transform_without_crs_is_not_georeferenced(utm_transform: rasterio.Affine) -> None:
    raster = read_geotiff(geotiff_bytes(np.zeros((10, 12), np.uint8), transform=utm_transform))
    assert raster.georef is None and raster.georef_reason is not None and "no CRS" in raster.georef_reason


def test_acquisition_time_prefers_acquisition_tags_over_tiff_datetime() -> None:
    tags = {"TIFFTAG_DATETIME": "2024:03:01 10:00:00", "ACQUISITION_START_TIME": "2023-01-15T03:14:15.5Z"}
    raster = read_geotiff(geotiff_bytes(np.zeros((8, 8), np.uint8), tags=tags))
    assert (
        raster.acquired == "2023-01-15T03:14:15.500000Z" and raster.acquired_tag == "ACQUISITION_START_TIME"
    )
    assert acquisition_time({"TIFFTAG_DATETIME": "2024:03:01 10:00:00"}) == (
        "2024-03-01T10:00:00Z",
        "TIFFTAG_DATETIME",
    )
    assert acquisition_time({"TIFFTAG_DATETIME": "yesterday"}) == (None, None)
    assert read_geotiff(geotiff_bytes(np.zeros((8, 8), np.uint8))).acquired is None


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2023:01:15 03:14:15", "2023-01-15T03:14:15Z"),
        ("2023-01-15T03:14:15", "2023-01-15T03:14:15Z"),
        ("2023-01-15 03:14:15+02:00", "2023-01-15T01:14:15Z"),
        ("2023-01-15T03:14:15.123456Z\x00", "2023-01-15T03:14:15.123456Z"),
        ("not a time", None),
    ],
)
def test_parse_time(text: str, iso: str | None) -> None:
    assert parse_time(text) == iso


def test_pixel_and_band_limits_are_413() -> None:
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(geotiff_bytes(np.zeros((100, 100), np.uint8)), max_pixels=9_999)
    assert excinfo.value.status_code == 413 and "100x100" in excinfo.value.detail
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(geotiff_bytes([np.zeros((4, 4), np.uint8)] * 5), max_bands=4)
    assert excinfo.value.status_code == 413 and "bands" in excinfo.value.detail


def test_truncated_file_is_400(utm_transform: rasterio.Affine) -> None:
    data = geotiff_bytes(np.ones((256, 256), np.uint8), crs="EPSG:32639", transform=utm_transform)
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(data[: len(data) // 2])
    assert excinfo.value.status_code == 400
    assert "/vsimem" not in excinfo.value.detail


def test_strip_beyond_the_file_is_400_not_a_crash() -> None:
    data = classic_tiff(strip_entries(64, 64, byte_count=64 * 64), pixel_data=b"\x00" * 100)
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(data)
    assert excinfo.value.status_code == 400


def test_not_a_tiff_is_400() -> None:
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert excinfo.value.status_code == 400 and "not a TIFF" in excinfo.value.detail


def test_scan_reads_bigtiff_and_cog_layouts(utm_transform: rasterio.Affine) -> None:
    band = np.zeros((1024, 1024), np.uint8)
    big = geotiff_bytes(band, crs="EPSG:32639", transform=utm_transform, BIGTIFF="YES")
    layout = scan_tiff(big)
    assert layout.bigtiff and layout.little_endian and (layout.width, layout.height) == (1024, 1024)
    assert read_geotiff(big).georef is not None
    tiled = geotiff_bytes(
        band, crs="EPSG:32639", transform=utm_transform, tiled=True, blockxsize=256, blockysize=256
    )
    assert scan_tiff(tiled).ifd_count == 1
