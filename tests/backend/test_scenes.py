"""backend.worker.scenes and extract_entry: a scene leaves the zip streamed and checked, and goes by path."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
import rasterio

from backend.core.config import settings
from backend.upload.entries import ZipEntry, extract_entry
from backend.worker.ml_client import Segmentation
from backend.worker.scenes import is_scene, mask_size, tiff_size

DATA = os.urandom(5 * (1 << 20) + 17)  # more than one extraction chunk


def only_entry(data: bytes) -> ZipEntry:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return ZipEntry.from_info(archive.infolist()[0])


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_an_entry_is_extracted_chunk_by_chunk_and_checked(compression: int) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("scene.tif", DATA)
    zipped = buffer.getvalue()
    out = io.BytesIO()
    extract_entry(io.BytesIO(zipped), only_entry(zipped), out, len(DATA))
    assert out.getvalue() == DATA
    with pytest.raises(ValueError, match="over the limit"):
        extract_entry(io.BytesIO(zipped), only_entry(zipped), io.BytesIO(), len(DATA) - 1)
    entry = only_entry(zipped)
    corrupt = bytearray(zipped)
    corrupt[entry.header_offset + 30 + len("scene.tif") + 1000] ^= 0xFF  # one byte of the data
    with pytest.raises(ValueError, match="cannot read zip entry"):
        extract_entry(io.BytesIO(bytes(corrupt)), entry, io.BytesIO(), len(DATA))


def test_scenes_are_large_tiffs() -> None:
    big = ZipEntry(0, 1, settings.SCENE_MIN_MB * 1024 * 1024 + 1, 0, 0, 0).to_record()
    small = ZipEntry(0, 1, 1000, 0, 0, 0).to_record()
    assert is_scene("a/measurement/vv.tiff", big) and is_scene("x.TIF", big)
    assert not is_scene("x.tif", small) and not is_scene("x.png", big) and not is_scene("x.tif", None)
    assert not is_scene("x.tif", "not a record")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_the_tiff_header_gives_the_size_of_a_scene_over_pillows_bomb_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.tif"
    profile = {"driver": "GTiff", "width": 30_000, "height": 20_000, "count": 1, "dtype": "uint8"}
    with rasterio.open(path, "w", tiled=True, sparse_ok=True, BIGTIFF="YES", **profile):
        pass  # no pixel written: a few kB on disk
    assert tiff_size(path) == (30_000, 20_000)
    (tmp_path / "no.tif").write_bytes(b"<VRTDataset/>")
    with pytest.raises(ValueError, match="not a readable TIFF"):
        tiff_size(tmp_path / "no.tif")


def test_the_mask_must_be_the_scene_divided_by_the_decimation() -> None:
    answer = Segmentation(
        mask_png=b"",
        overlay_png=b"",
        oil_fraction=0.0,
        model_version="m",
        width=1250,
        height=835,
        decimation=2,
    )
    assert mask_size((2501, 1670), answer) == (1250, 835)
    with pytest.raises(ValueError, match="1250x835 mask for a 2400x1670 scene"):
        mask_size((2400, 1670), answer)
