"""Zips with hostile names and odd entries against scan_images: what is accepted, skipped, kept apart.

The `scan` fixture fails a test whose scan wrote, created or touched any file: nothing is ever extracted.
"""

import stat
import struct
import unicodedata
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.storage.layout import output_names
from backend.upload.errors import UploadError
from backend.upload.scan import ZipImage, ZipLimits, ZipScan

ZipMaker = Callable[..., Path]
Refuse = Callable[[Path, ZipLimits], UploadError]
Scan = Callable[[Path, ZipLimits], ZipScan]
ReadImage = Callable[[Path, ZipImage], bytes]


def reasons(result: ZipScan) -> dict[str, str]:
    return {entry.name: entry.reason for entry in result.skipped}


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def test_finds_images_in_nested_folders_byte_for_byte(
    make_zip: ZipMaker, make_image: Callable[..., bytes], scan: Scan, read_image: ReadImage, limits: ZipLimits
) -> None:
    files = {
        "a.png": make_image("PNG"),
        "scenes/2021/b.JPG": make_image("JPEG", seed=1),
        "scenes/2021/c.tiff": make_image("TIFF", seed=2),
        "d.TIF": make_image("TIFF", seed=3),
        "e.jpeg": make_image("JPEG", seed=4),
    }
    zip_path = make_zip(files.items())
    result = scan(zip_path, limits)
    assert [image.name for image in result.images] == list(files)
    for image in result.images:
        assert image.entry.file_size == len(files[image.name])
        assert read_image(zip_path, image) == files[image.name]
    assert result.skipped == []


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_other_compression_methods(
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    scan: Scan,
    read_image: ReadImage,
    limits: ZipLimits,
    compression: int,
) -> None:
    data = make_image("PNG")
    zip_path = make_zip([("x.png", data)], compression)
    result = scan(zip_path, limits)
    assert result.images[0].entry.compress_type == compression
    assert read_image(zip_path, result.images[0]) == data


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../../evil.png", "traversal"),
        ("..\\..\\evil.png", "traversal"),
        ("ok/../../evil.png", "traversal"),
        ("/tmp/evil.png", "absolute"),
        ("C:\\Windows\\evil.png", "drive"),
        ("C:/evil.png", "drive"),
    ],
)
def test_zip_slip_entries_are_skipped_and_nothing_is_written(
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    list_tree: Callable[[Path], set[str]],
    tmp_path: Path,
    scan: Scan,
    limits: ZipLimits,
    name: str,
    reason: str,
) -> None:
    zip_path = make_zip([(name, make_image()), ("good.png", make_image())])
    before = list_tree(tmp_path.parent)
    result = scan(zip_path, limits)
    assert [image.name for image in result.images] == ["good.png"]
    assert reason in reasons(result)[name]
    assert list_tree(tmp_path.parent) == before


def test_symlink_entries_are_skipped(
    make_zip: ZipMaker, make_image: Callable[..., bytes], scan: Scan, limits: ZipLimits
) -> None:
    zip_path = make_zip([(symlink_entry("link.png"), b"../../../etc/passwd"), ("x.png", make_image())])
    result = scan(zip_path, limits)
    assert reasons(result) == {"link.png": "symbolic link"}
    assert [image.name for image in result.images] == ["x.png"]


def test_nested_zip_is_skipped_and_not_opened(
    make_zip_bytes: Callable[..., bytes],
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    scan: Scan,
    limits: ZipLimits,
) -> None:
    inner = make_zip_bytes([("inner.png", make_image())])
    result = scan(make_zip([("inner.zip", inner), ("disguised.png", inner), ("x.png", make_image())]), limits)
    assert [image.name for image in result.images] == ["x.png"]
    assert reasons(result) == {
        "inner.zip": "nested zip archive (not opened)",
        "disguised.png": "not an image (content is not PNG, JPEG or TIFF)",
    }


def test_zip_with_only_non_images_is_400_listing_what_was_skipped(
    make_zip: ZipMaker, limits: ZipLimits, refuse: Refuse
) -> None:
    entries = [("readme.txt", b"hi"), ("data.csv", b"1,2"), ("noext", b"x"), ("__MACOSX/._x.png", b"x")]
    error = refuse(make_zip([*entries, zipfile.ZipInfo("folder/")]), limits)
    assert error.status_code == 400
    assert error.detail.startswith("no images found in zip")
    assert "readme.txt: not an image (.txt)" in error.detail
    assert "and 0 more" not in error.detail
    assert "skipped 4:" in error.detail  # the folder record is not listed


def test_image_checks_are_cheap_and_per_entry(
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    lie_about_size: Callable[[bytes, int, int], bytes],
    make_zip_bytes: Callable[..., bytes],
    scan: Scan,
    read_image: ReadImage,
    limits: ZipLimits,
) -> None:
    png = make_image("PNG")
    data = make_zip_bytes(
        [
            ("empty.png", b""),
            ("text.png", b"just some text, not an image"),
            ("jpeg-named.png", make_image("JPEG")),
            ("tiny.tif", b"II"),
            ("truncated.png", png[:40]),
            ("claims-empty.png", png),
            ("ok.png", png),
        ]
    )
    zip_path = make_zip(lie_about_size(data, 5, 0))
    result = scan(zip_path, limits)
    assert reasons(result) == {
        "empty.png": "empty file",
        "text.png": "not an image (content is not PNG, JPEG or TIFF)",
        "jpeg-named.png": "content is JPEG but the extension says PNG",
        "tiny.tif": "not an image (content is not PNG, JPEG or TIFF)",
        "claims-empty.png": "empty file",
    }
    assert [image.name for image in result.images] == ["truncated.png", "ok.png"]
    assert read_image(zip_path, result.images[0]) == png[:40]


def test_unsupported_compression_and_encryption_are_skipped(
    make_zip_bytes: Callable[..., bytes], make_zip: ZipMaker, make_image: Callable[..., bytes], scan: Scan
) -> None:
    data = bytearray(make_zip_bytes([("odd.png", make_image()), ("ok.png", make_image())]))
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 10, 99)  # compression method of the first record
    struct.pack_into("<H", data, central + 8, 0x1)  # and its "encrypted" flag
    result = scan(make_zip(bytes(data)), ZipLimits(1 << 20, 100, 10, 10))
    assert reasons(result) == {"odd.png": "encrypted"}
    struct.pack_into("<H", data, central + 8, 0)
    result = scan(make_zip(bytes(data)), ZipLimits(1 << 20, 100, 10, 10))
    assert reasons(result) == {"odd.png": "unsupported compression method 99"}


@pytest.mark.parametrize(
    ("flags", "reason"),
    [(0x40, "encrypted"), (0x41, "encrypted"), (0x20, "compressed patched data (not supported)")],
)
def test_strong_encryption_and_patched_data_are_skipped_not_a_500(
    make_zip_bytes: Callable[..., bytes],
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    scan: Scan,
    flags: int,
    reason: str,
) -> None:
    # zipfile raises NotImplementedError when asked to open such an entry: it must never get that far.
    data = bytearray(make_zip_bytes([("odd.png", make_image()), ("ok.png", make_image())]))
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 8, flags)
    result = scan(make_zip(bytes(data)), ZipLimits(1 << 20, 100, 10, 10))
    assert reasons(result) == {"odd.png": reason}
    assert [image.name for image in result.images] == ["ok.png"]


def test_awkward_names_are_kept_distinct_and_deterministic(
    make_zip: ZipMaker, make_image: Callable[..., bytes], scan: Scan, read_image: ReadImage, limits: ZipLimits
) -> None:
    long_name = "ö" * 150 + ".png"
    nfc = unicodedata.normalize("NFC", "café.png")
    nfd = unicodedata.normalize("NFD", "café.png")
    names = ["a/x.png", "b/x.png", "X.png", "x.png", nfc, nfd, "my scan (1).png", long_name, "日本/画像.png"]
    images = {name: make_image(seed=i) for i, name in enumerate(names)}
    zip_path = make_zip(images.items())
    result = scan(zip_path, limits)
    got = [image.name for image in result.images]
    assert got[:4] == ["a/x.png", "b/x.png", "X.png", "x.png"]  # the zip's names, case kept
    assert got[4:7] == ["café.png", "café (2).png", "my scan (1).png"]  # NFC and NFD: the same name twice
    assert got[8] == "日本/画像.png"
    assert got[7].endswith(".png")
    assert len(got[7].encode()) <= 200
    assert len(set(got)) == len(names)
    outputs = output_names(got).values()
    assert len({name.casefold() for name in outputs}) == len(names)
    for name, image in zip(names, result.images, strict=True):
        assert read_image(zip_path, image) == images[name]
    again = scan(make_zip(images.items()), limits)
    assert [image.name for image in again.images] == got


def test_macos_metadata_and_dotfiles_are_skipped_with_reasons_and_folders_left_out(
    make_zip: ZipMaker, make_image: Callable[..., bytes], scan: Scan, limits: ZipLimits
) -> None:
    entries = [
        zipfile.ZipInfo("scenes/"),
        ("scenes/x.png", make_image()),
        ("__MACOSX/scenes/._x.png", b"\x00\x05\x16\x07"),
        ("scenes/.DS_Store", b"Bud1"),
        (".hidden.png", make_image()),
    ]
    result = scan(make_zip(entries), limits)
    assert reasons(result) == {
        "__MACOSX/scenes/._x.png": "macOS metadata (__MACOSX)",
        "scenes/.DS_Store": "hidden file or folder",
        ".hidden.png": "hidden file or folder",
    }
    assert [image.name for image in result.images] == ["scenes/x.png"]


def test_a_refusal_after_accepted_images_writes_nothing_and_leaves_the_zip_as_it_was(
    make_zip_bytes: Callable[..., bytes],
    make_zip: ZipMaker,
    make_image: Callable[..., bytes],
    lie_about_size: Callable[[bytes, int, int], bytes],
    limits: ZipLimits,
    refuse: Refuse,
) -> None:
    data = lie_about_size(
        make_zip_bytes([("a/ok.png", make_image()), ("b/liar.png", make_image(seed=1))]), 1, 5
    )
    zip_path = make_zip(data)
    assert "b/liar.png" in refuse(zip_path, limits).detail  # refuse() checks that no file changed or appeared
    assert zip_path.read_bytes() == data
