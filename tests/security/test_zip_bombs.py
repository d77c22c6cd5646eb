"""Zip bombs, lying and corrupt zips against scan_images: refused with 413/400, nothing written."""

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.upload.errors import UploadError
from backend.upload.scan import ZipLimits, scan_images

ZipMaker = Callable[..., Path]
Refuse = Callable[[Path, ZipLimits], UploadError]


def test_total_uncompressed_size_over_the_limit_is_413(
    make_zip: ZipMaker, make_image: Callable[..., bytes], refuse: Refuse
) -> None:
    limits = ZipLimits(max_uncompressed_bytes=100_000, max_ratio=100, max_entries=10, max_images=10)
    big = make_image("PNG", size=(300, 300))  # random pixels: ~90 kB, does not compress
    error = refuse(make_zip([("a.png", big), ("b.png", big)]), limits)
    assert error.status_code == 413
    assert "expand" in error.detail


def test_compression_ratio_over_the_limit_is_413(
    make_zip: ZipMaker, limits: ZipLimits, refuse: Refuse
) -> None:
    bomb = b"\x89PNG\r\n\x1a\n" + bytes(8 << 20)
    error = refuse(make_zip([("bomb.png", bomb)]), limits)
    assert error.status_code == 413
    assert "ratio" in error.detail


def test_ratio_bomb_is_refused_even_when_not_named_as_an_image(
    make_zip: ZipMaker, make_image: Callable[..., bytes], limits: ZipLimits, refuse: Refuse
) -> None:
    error = refuse(make_zip([("x.png", make_image()), ("notes.txt", bytes(4 << 20))]), limits)
    assert error.status_code == 413


def test_too_many_entries_is_413(make_zip: ZipMaker, limits: ZipLimits, refuse: Refuse) -> None:
    entries = [(f"f{i}.txt", b"x") for i in range(limits.max_entries + 1)]
    error = refuse(make_zip(entries), limits)
    assert error.status_code == 413
    assert "too many entries" in error.detail


def test_too_many_images_is_413(make_zip: ZipMaker, make_image: Callable[..., bytes], refuse: Refuse) -> None:
    limits = ZipLimits(max_uncompressed_bytes=1 << 20, max_ratio=100, max_entries=100, max_images=3)
    error = refuse(make_zip([(f"{i}.png", make_image()) for i in range(4)]), limits)
    assert error.status_code == 413
    assert "too many images" in error.detail


def test_end_record_claiming_too_many_entries_is_refused_before_parsing(
    make_zip_bytes: Callable[..., bytes], make_zip: ZipMaker, limits: ZipLimits, refuse: Refuse
) -> None:
    data = bytearray(make_zip_bytes([("x.png", b"\x89PNG\r\n\x1a\n")]))
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 60_000, 60_000)
    assert refuse(make_zip(bytes(data)), limits).status_code == 413


def test_end_record_claiming_a_huge_directory_is_413(
    make_zip_bytes: Callable[..., bytes], make_zip: ZipMaker, limits: ZipLimits, refuse: Refuse
) -> None:
    data = bytearray(make_zip_bytes([("x.png", b"\x89PNG\r\n\x1a\n")]))
    struct.pack_into("<L", data, data.rindex(b"PK\x05\x06") + 12, 0xFFFF_FFF0)
    error = refuse(make_zip(bytes(data)), limits)
    assert error.status_code == 413
    assert "directory" in error.detail


def test_zip64_end_record_is_read(
    monkeypatch: pytest.MonkeyPatch,
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    refuse: Refuse,
) -> None:
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)  # makes the writer emit ZIP64 end records
    zip_path = make_zip([(f"{i}.png", make_image(seed=i)) for i in range(5)])
    assert b"PK\x06\x06" in zip_path.read_bytes()
    error = refuse(zip_path, ZipLimits(1 << 20, 100, max_entries=4, max_images=10))
    assert error.detail == "too many entries in zip (5 > 4)"
    result = scan_images(zip_path, ZipLimits(1 << 20, 100, max_entries=5, max_images=10))
    assert len(result.images) == 5


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"", "uploaded file is empty"),
        (
            b"hello, this is not a zip file at all" * 10,
            "not a zip file: upload a .zip of PNG, JPEG or TIFF images",
        ),
        (
            b"\x89PNG\r\n\x1a\n" + bytes(100),
            "not a zip file but a PNG image: zip it first, e.g. zip scenes.zip *.png",
        ),
        (b"II*\x00" + bytes(100), "not a zip file but a TIFF image: zip it first, e.g. zip scenes.zip *.tif"),
        (b"PK\x05\x06" + bytes(18), "zip file is empty"),
    ],
)
def test_not_a_zip_or_empty_is_400(
    make_zip: ZipMaker, limits: ZipLimits, data: bytes, detail: str, refuse: Refuse
) -> None:
    error = refuse(make_zip(data), limits)
    assert (error.status_code, error.detail) == (400, detail)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.99])
def test_truncated_zip_is_400(
    make_zip_bytes: Callable[..., bytes],
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    limits: ZipLimits,
    keep: float,
    refuse: Refuse,
) -> None:
    data = make_zip_bytes([(f"{i}.png", make_image(seed=i)) for i in range(3)])
    error = refuse(make_zip(data[: int(len(data) * keep)]), limits)
    assert error.status_code == 400
    assert "corrupt or truncated" in error.detail


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("declared_delta", [-1, -4000, +1, +3000])
def test_central_directory_lying_about_size_is_caught_while_scanning(
    make_zip_bytes: Callable[..., bytes],
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    lie_about_size: Callable[[bytes, int, int], bytes],
    limits: ZipLimits,
    compression: int,
    declared_delta: int,
    refuse: Refuse,
) -> None:
    first, liar = make_image(seed=1), make_image("PNG", size=(80, 80), seed=2)
    data = make_zip_bytes([("first.png", first), ("liar.png", liar)], compression)
    error = refuse(make_zip(lie_about_size(data, 1, len(liar) + declared_delta)), limits)
    assert error.status_code == 400
    assert "liar.png" in error.detail


def test_local_header_name_differing_from_directory_is_400(
    make_zip_bytes: Callable[..., bytes],
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    refuse: Refuse,
) -> None:
    data = make_zip_bytes([("aaaaaa.png", make_image())])
    patched = data.replace(b"aaaaaa.png", b"../x/a.png", 1)  # the local header comes first
    error = refuse(make_zip(patched), ZipLimits(1 << 20, 100, 10, 10))
    assert error.status_code == 400


def test_crc_mismatch_is_400(
    make_zip_bytes: Callable[..., bytes],
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    refuse: Refuse,
) -> None:
    image = make_image()
    data = bytearray(make_zip_bytes([("x.png", image)], zipfile.ZIP_STORED))
    at = data.index(image) + len(image) // 2
    data[at] ^= 0xFF
    error = refuse(make_zip(bytes(data)), ZipLimits(1 << 20, 100, 10, 10))
    assert error.status_code == 400
    assert "CRC" in error.detail


def test_invalid_utf8_name_is_400(
    make_zip_bytes: Callable[..., bytes],
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    refuse: Refuse,
) -> None:
    data = make_zip_bytes([("é.png", make_image())]).replace("é".encode(), b"\xc3\x28")
    assert refuse(make_zip(data), ZipLimits(1 << 20, 100, 10, 10)).status_code == 400
