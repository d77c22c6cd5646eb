"""Builders for hostile zips and small test images, made in code so the tests need no data files."""

import io
import struct
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.upload_stream import UploadError
from backend.zip_extract import ZipLimits, extract_images

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


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """Where extract_images writes: results/<user>/images under the test's tmp dir (not created)."""
    return tmp_path / "results" / "user" / "images"


def refused(zip_path: Path, dest: Path, limits: ZipLimits) -> UploadError:
    """Run an extraction that must fail; check it left nothing behind and return the error."""
    outside = {p for p in zip_path.parent.parent.rglob("*") if dest not in p.parents and p != dest}
    with pytest.raises(UploadError) as caught:
        extract_images(zip_path, dest, limits)
    assert not dest.exists()
    after = {p for p in zip_path.parent.parent.rglob("*") if dest not in p.parents and p != dest}
    assert after - outside <= {dest.parent, dest.parent.parent}
    assert caught.value.detail
    return caught.value


@pytest.fixture(scope="session")
def refuse() -> Callable[[Path, Path, ZipLimits], UploadError]:
    return refused


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
