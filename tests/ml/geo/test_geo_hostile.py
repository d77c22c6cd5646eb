"""Hostile uploads: refused with a reason or degraded to "not georeferenced", fast, nothing read outside."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
from geo_samples import DOUBLE, LONG, SHORT, classic_tiff, geotiff_bytes, strip_entries
from rasterio.io import MemoryFile

from ml.geo import raster as raster_module
from ml.geo.raster import TiffLayout, read_geotiff, scan_tiff
from ml.image_errors import ImageError

SECRET = b"root:x:0:0:SECRET-LOCAL-FILE-CONTENT".ljust(100, b"#")


def vrt_pointing_at(path: Path) -> bytes:
    return f"""<VRTDataset rasterXSize="10" rasterYSize="10">
  <VRTRasterBand dataType="Byte" band="1" subClass="VRTRawRasterBand">
    <SourceFilename relativetoVRT="0">{path}</SourceFilename>
    <ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>10</LineOffset>
  </VRTRasterBand>
</VRTDataset>""".encode()


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_vrt_renamed_tif_is_a_real_threat_to_a_naive_reader(tmp_path: Path) -> None:
    """What the defences are for: GDAL's default driver list reads a local file through the VRT."""
    secret = tmp_path / "secret.raw"
    secret.write_bytes(SECRET)
    with MemoryFile(vrt_pointing_at(secret), ext="tif") as memfile, memfile.open() as src:
        assert src.driver == "VRT" and src.read(1).tobytes().startswith(b"root:x:0")


def test_vrt_renamed_tif_is_refused_before_gdal(tmp_path: Path) -> None:
    secret = tmp_path / "secret.raw"
    secret.write_bytes(SECRET)
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(vrt_pointing_at(secret))
    assert excinfo.value.status_code == 400 and "not a TIFF" in excinfo.value.detail
    assert "SECRET" not in excinfo.value.detail


def test_vrt_is_refused_by_the_gtiff_only_open_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Second line of defence: even past the magic check, GDAL may only use its GTiff driver."""
    secret = tmp_path / "secret.raw"
    secret.write_bytes(SECRET)
    monkeypatch.setattr(
        raster_module, "scan_tiff", lambda data, max_ifds: TiffLayout(False, True, 1, 10, 10, 1)
    )
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(vrt_pointing_at(secret))
    assert excinfo.value.status_code == 400 and "unreadable GeoTIFF" in excinfo.value.detail
    assert "SECRET" not in excinfo.value.detail


def test_declared_100000_square_canvas_is_413_fast_without_allocation() -> None:
    data = classic_tiff(strip_entries(100_000, 100_000, byte_count=64), pixel_data=b"\x00" * 64)
    assert len(data) < 1000
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(data)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert excinfo.value.status_code == 413 and "100000x100000" in excinfo.value.detail
    assert elapsed < 0.5 and peak < 5_000_000


def test_big_canvas_is_refused_by_gdal_size_check_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the structure scan be fooled, the size GDAL reports is checked before reading."""
    data = classic_tiff(strip_entries(100_000, 100_000, byte_count=64), pixel_data=b"\x00" * 64)
    monkeypatch.setattr(
        raster_module, "scan_tiff", lambda data, max_ifds: TiffLayout(False, True, 1, 10, 10, 1)
    )
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(data)
    assert excinfo.value.status_code == 413


def test_thousands_of_ifds_are_refused_fast() -> None:
    data = classic_tiff(strip_entries(4, 4), pixel_data=b"\x00" * 16, ifd_count=5000)
    started = time.perf_counter()
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(data)
    assert time.perf_counter() - started < 0.5
    assert excinfo.value.status_code == 413 and "IFDs" in excinfo.value.detail


def test_subifds_count_as_ifds() -> None:
    entries = [*strip_entries(4, 4), (330, LONG, list(range(8, 8 + 4 * 3000, 4)))]
    with pytest.raises(ImageError) as excinfo:
        scan_tiff(classic_tiff(entries, pixel_data=b"\x00" * 16))
    assert excinfo.value.status_code == 413


def test_ifd_loop_is_400() -> None:
    data = classic_tiff(strip_entries(4, 4), pixel_data=b"\x00" * 16, ifd_count=3, loop=True)
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(data)
    assert excinfo.value.status_code == 400 and "loop" in excinfo.value.detail


@pytest.mark.parametrize(
    "data",
    [
        b"II*\x00" + (10_000).to_bytes(4, "little") + b"\x00" * 8,  # IFD beyond the end
        b"II*\x00" + (8).to_bytes(4, "little") + (500).to_bytes(2, "little") + b"\x00" * 20,  # truncated IFD
        b"II*\x00\x00\x00",  # truncated header
        b"II+\x00\x08\x00\x00\x00",  # truncated BigTIFF header
    ],
)
def test_corrupt_structure_is_400(data: bytes) -> None:
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(data)
    assert excinfo.value.status_code == 400 and "corrupt TIFF" in excinfo.value.detail


def test_ifd_without_size_is_400() -> None:
    entries = [e for e in strip_entries(4, 4) if e[0] not in (256, 257)]
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(classic_tiff(entries, pixel_data=b"\x00" * 16))
    assert excinfo.value.status_code == 400 and "width or height" in excinfo.value.detail


GEO_TAGS = [(33550, DOUBLE, [10.0, 10.0, 0.0]), (33922, DOUBLE, [0, 0, 0, 600_000.0, 2_990_000.0, 0])]


@pytest.mark.parametrize(
    ("name", "geokeys"),
    [
        ("unknown EPSG code", [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 59999]),
        ("user-defined CRS without parameters", [1, 1, 0, 2, 1024, 0, 1, 1, 3072, 0, 1, 32767]),
        ("more keys declared than present", [1, 1, 0, 50, 1024, 0, 1, 1]),
        ("key pointing at missing double params", [1, 1, 0, 2, 1024, 0, 1, 2, 2057, 34736, 1, 5]),
        ("key pointing at missing ascii params", [1, 1, 0, 2, 1024, 0, 1, 2, 1026, 34737, 40, 0]),
        ("unknown directory version", [9, 9, 9, 1, 1024, 0, 1, 1]),
        ("unknown geographic CRS", [1, 1, 0, 2, 1024, 0, 1, 2, 2048, 0, 1, 1234]),
    ],
)
def test_broken_geokeys_degrade_to_not_georeferenced(name: str, geokeys: list[int]) -> None:
    data = classic_tiff(
        [*strip_entries(16, 16), *GEO_TAGS, (34735, SHORT, geokeys)], pixel_data=bytes(range(256))
    )
    raster = read_geotiff(data)
    assert raster.georef is None, name
    assert raster.georef_reason
    np.testing.assert_array_equal(raster.band.ravel(), np.arange(256, dtype=np.uint8))


def test_engineering_crs_is_not_georeferenced(utm_transform: rasterio.Affine) -> None:
    local = rasterio.crs.CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]')
    raster = read_geotiff(geotiff_bytes(np.zeros((8, 8), np.uint8), crs=local, transform=utm_transform))
    assert raster.georef is None and raster.georef_reason is not None


def test_too_few_gcps_are_not_georeferenced() -> None:
    gcps = [
        rasterio.control.GroundControlPoint(row=0, col=0, x=51, y=27),
        rasterio.control.GroundControlPoint(1, 1, 51.1, 26.9),
    ]
    raster = read_geotiff(geotiff_bytes(np.zeros((8, 8), np.uint8), gcps=gcps))
    assert (
        raster.georef is None
        and raster.georef_reason is not None
        and "ground control points" in raster.georef_reason
    )


def test_absurd_tile_size_is_400_not_a_crash() -> None:
    entries = [e for e in strip_entries(64, 64) if e[0] not in (273, 278, 279)]
    entries += [(322, LONG, [2**31 - 16]), (323, LONG, [2**31 - 16]), (324, LONG, [8]), (325, LONG, [16])]
    with pytest.raises(ImageError) as excinfo:
        read_geotiff(classic_tiff(entries, pixel_data=b"\x00" * 16))
    assert excinfo.value.status_code == 413 and "larger than the image" in excinfo.value.detail


def test_collinear_gcps_are_not_georeferenced() -> None:
    GCP = rasterio.control.GroundControlPoint
    line = [GCP(row=i, col=i, x=51.0 + i * 1e-4, y=27.0 - i * 1e-4) for i in range(5)]
    raster = read_geotiff(geotiff_bytes(np.zeros((8, 8), np.uint8), gcps=line))
    assert raster.georef is None and raster.georef_reason
