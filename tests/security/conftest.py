"""Builders for hostile zips and small test images, made in code so the tests need no data files."""

import io
import struct
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.upload.entries import read_entry
from backend.upload.errors import UploadError
from backend.upload.scan import ZipImage, ZipLimits, ZipScan, scan_images

Entry = tuple[str | zipfile.ZipInfo, bytes] | zipfile.ZipInfo
ZipMaker = Callable[..., Path]


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (16, 12), seed: int = 0) -> bytes:
    """A small grey image encoded as PNG, JPEG or TIFF."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format=fmt)
    return buf.getvalue()


def zip_bytes(entries: Iterable[Entry], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of (name, data) pairs or ready-made ZipInfo records (data empty unless given)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for entry in entries:
            if isinstance(entry, zipfile.ZipInfo):
                archive.writestr(entry, b"")
            else:
                archive.writestr(*entry)
    return buf.getvalue()


def patch_central_sizes(data: bytes, entry_index: int, file_size: int) -> bytes:
    """Overwrite the uncompressed size in one central-directory record; the local header keeps the truth."""
    out = bytearray(data)
    at = -1
    for _ in range(entry_index + 1):
        at = out.index(b"PK\x01\x02", at + 1)
    struct.pack_into("<L", out, at + 24, file_size)
    return bytes(out)


def listing(root: Path) -> set[str]:
    """Every path under root, relative, for before/after comparisons."""
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime: proof that a scan wrote, created or touched nothing."""
    return {
        str(path.relative_to(root)): (path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in root.rglob("*")
    }


def image_data(zip_path: Path, image: ZipImage) -> bytes:
    """What a worker will read for this image: the bytes at its recorded entry in the zip."""
    with zip_path.open("rb") as file:
        return read_entry(file, image.entry, max_bytes=1 << 30)


@pytest.fixture(scope="session")
def make_image() -> Callable[..., bytes]:
    return image_bytes


@pytest.fixture(scope="session")
def make_zip_bytes() -> Callable[..., bytes]:
    return zip_bytes


@pytest.fixture(scope="session")
def lie_about_size() -> Callable[[bytes, int, int], bytes]:
    return patch_central_sizes


@pytest.fixture(scope="session")
def list_tree() -> Callable[[Path], set[str]]:
    return listing


@pytest.fixture(scope="session")
def read_image() -> Callable[[Path, ZipImage], bytes]:
    return image_data


def refused(zip_path: Path, limits: ZipLimits) -> UploadError:
    """Run a scan that must fail; check it wrote nothing anywhere near the zip and return the error."""
    root = zip_path.parent.parent
    before = snapshot(root)
    with pytest.raises(UploadError) as caught:
        scan_images(zip_path, limits)
    assert snapshot(root) == before
    assert caught.value.detail
    return caught.value


@pytest.fixture(scope="session")
def refuse() -> Callable[[Path, ZipLimits], UploadError]:
    return refused


@pytest.fixture
def scan(tmp_path: Path) -> Callable[[Path, ZipLimits], ZipScan]:
    """scan_images, checked to have written, created or touched nothing under the test's tmp dir."""

    def run(zip_path: Path, limits: ZipLimits) -> ZipScan:
        before = snapshot(tmp_path)
        result = scan_images(zip_path, limits)
        assert snapshot(tmp_path) == before
        return result

    return run


@pytest.fixture(scope="session")
def limits() -> ZipLimits:
    return ZipLimits(max_uncompressed_bytes=64 << 20, max_ratio=100.0, max_entries=200, max_images=50)


@pytest.fixture
def make_zip(tmp_path: Path) -> ZipMaker:
    """Write a zip built from `entries` (or raw bytes) into tmp_path/uploads and return its path."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    counter = iter(range(1_000_000))

    def make(entries: Iterable[Entry] | bytes, compression: int = zipfile.ZIP_DEFLATED) -> Path:
        data = entries if isinstance(entries, bytes) else zip_bytes(entries, compression)
        path = folder / f"upload{next(counter)}.zip"
        path.write_bytes(data)
        return path

    return make
