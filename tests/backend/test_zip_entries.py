"""read_entry and ZipEntry records: an entry read back from the zip alone by its recorded location."""

from __future__ import annotations

import io
import itertools
import os
import zipfile

import pytest

from backend.upload.entries import ZipEntry, read_entry

LIMIT = 1 << 20
DATA = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40 + os.urandom(3000)  # compressible, then not


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def entries_of(data: bytes) -> dict[str, ZipEntry]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: ZipEntry.from_info(info) for info in archive.infolist()}


def read(data: bytes, entry: ZipEntry, max_bytes: int = LIMIT) -> bytes:
    return read_entry(io.BytesIO(data), entry, max_bytes)


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_every_supported_method_round_trips_through_its_record(compression: int) -> None:
    data = make_zip({"first.txt": b"something before", "dir/x.png": DATA}, compression)
    entry = entries_of(data)["dir/x.png"]
    assert entry.header_offset > 0 and entry.compress_type == compression
    again = ZipEntry.from_record(entry.to_record())
    assert again == entry
    assert read(data, again) == DATA


def test_three_entries_read_in_any_order_from_one_open_file() -> None:
    contents = {"a.png": DATA, "b/b.png": DATA[::-1], "c.png": os.urandom(5000)}
    data = make_zip(contents)
    entries = entries_of(data)
    for order in itertools.permutations(contents):
        with io.BytesIO(data) as file:
            assert [read_entry(file, entries[name], LIMIT) for name in order] == [
                contents[name] for name in order
            ]


def test_data_prepended_to_the_zip_and_local_extra_fields_are_allowed_for() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("x.png")
        info.extra = b"\xfe\xca\x05\x00hello"  # an unknown extra field, skipped by its length
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, DATA)
    data = b"#!/bin/sh\nexit 0\n" + buffer.getvalue()  # as in a self-extracting archive
    entry = entries_of(data)["x.png"]
    assert read(data, entry) == DATA


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes sizes and CRC after the data (flag bit 3)."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)


def test_entries_with_a_data_descriptor_use_the_central_directory_sizes() -> None:
    stream = _Unseekable()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("x.png", "w") as out:
        out.write(DATA)
    data = stream.buffer.getvalue()
    entry = entries_of(data)["x.png"]
    assert entry.flag_bits & 0x8
    assert read(data, entry) == DATA


@pytest.mark.parametrize("shift", [1, -1, 10_000_000])
def test_a_wrong_offset_is_a_value_error(shift: int) -> None:
    data = make_zip({"a.png": DATA, "b.png": DATA})
    entry = entries_of(data)["b.png"]
    with pytest.raises(ValueError, match="local file header"):
        read(data, ZipEntry(**{**vars(entry), "header_offset": entry.header_offset + shift}))


@pytest.mark.parametrize(
    ("compression", "error"), [(zipfile.ZIP_STORED, "Bad CRC-32"), (zipfile.ZIP_DEFLATED, None)]
)
def test_a_tampered_byte_is_a_value_error(compression: int, error: str | None) -> None:
    data = bytearray(make_zip({"x.png": DATA}, compression))
    entry = entries_of(bytes(data))["x.png"]
    at = entry.header_offset + 30 + len("x.png") + entry.compress_size - 100  # in the data's last part
    data[at] ^= 0xFF
    with pytest.raises(ValueError, match=error):  # stored: the CRC; deflated: the CRC or the stream
        read(bytes(data), entry)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA])
@pytest.mark.parametrize("delta", [-1, +1, -1000, +1000])
def test_a_lying_size_is_a_value_error(compression: int, delta: int) -> None:
    """The uncompressed size: ZipExtFile stops at it (too small: CRC error) or runs out of data (too big)."""
    data = make_zip({"x.png": DATA, "y.png": DATA}, compression)
    entry = entries_of(data)["x.png"]
    with pytest.raises(ValueError):
        read(data, ZipEntry(**{**vars(entry), "file_size": entry.file_size + delta}))


def test_a_wrong_method_or_crc_is_a_value_error() -> None:
    data = make_zip({"x.png": DATA})
    entry = entries_of(data)["x.png"]
    for wrong in ({"crc": entry.crc ^ 1}, {"compress_type": zipfile.ZIP_STORED}, {"compress_type": 99}):
        with pytest.raises(ValueError):
            read(data, ZipEntry(**{**vars(entry), **wrong}))


def test_entries_over_the_limit_or_encrypted_are_refused_before_reading() -> None:
    data = make_zip({"x.png": DATA})
    entry = entries_of(data)["x.png"]
    with pytest.raises(ValueError, match="over the limit"):
        read(data, entry, max_bytes=len(DATA) - 1)
    assert read(data, entry, max_bytes=len(DATA)) == DATA
    with pytest.raises(ValueError, match="encrypted"):
        read(data, ZipEntry(**{**vars(entry), "flag_bits": entry.flag_bits | 0x1}))


def test_a_truncated_zip_is_a_value_error() -> None:
    data = make_zip({"x.png": DATA}, zipfile.ZIP_STORED)
    entry = entries_of(data)["x.png"]
    with pytest.raises(ValueError):
        read(data[: entry.header_offset + 30 + 5 + len(DATA) // 2], entry)


@pytest.mark.parametrize(
    "record", ["", "1:2:3:4:5", "1:2:3:4:5:6:7", "1:2:3:4:5:-6", "a:b:c:d:e:f", "1:2:3:4:5: 6"]
)
def test_malformed_records_are_a_value_error(record: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        ZipEntry.from_record(record)
