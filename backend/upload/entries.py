"""Where an image's bytes lie inside the uploaded zip, and reading them back from there.

The upload scan (backend.upload.scan) validates every entry once and records its location; the worker then
reads an image straight from upload.zip by that record instead of parsing the zip's central directory
again, which for a 10,000-entry zip would cost a full parse per chord member. Only scenes are extracted to
disk (backend.worker.scenes), streamed.
"""

from __future__ import annotations

import lzma
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

# The fixed part of a local file header: signature, 22 bytes we do not need (the sizes and CRC that count are
# the central directory's, recorded in ZipEntry), then the lengths of the name and extra field that follow.
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
# Encrypted (bit 0), compressed patched data (bit 5), strong encryption (bit 6): never readable here.
_UNREADABLE_FLAGS = 0x1 | 0x20 | 0x40
_FIELDS = 6
EXTRACT_CHUNK = 1 << 22  # bytes copied at a time by extract_entry
_CORRUPT = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
)


@dataclass(frozen=True)
class ZipEntry:
    """An entry's location and central-directory facts: enough to decompress and CRC-check it alone."""

    header_offset: int  # of the local file header, from the start of the file
    compress_size: int
    file_size: int
    compress_type: int
    crc: int
    flag_bits: int

    @classmethod
    def from_info(cls, info: zipfile.ZipInfo) -> ZipEntry:
        """From zipfile's record (offset already corrected for data prepended to the zip, ZIP64 resolved)."""
        return cls(
            header_offset=info.header_offset,
            compress_size=info.compress_size,
            file_size=info.file_size,
            compress_type=info.compress_type,
            crc=info.CRC,
            flag_bits=info.flag_bits,
        )

    def to_record(self) -> str:
        """A compact string for Redis: the six fields as decimal integers joined by ':'."""
        return ":".join(
            str(value)
            for value in (
                self.header_offset,
                self.compress_size,
                self.file_size,
                self.compress_type,
                self.crc,
                self.flag_bits,
            )
        )

    @classmethod
    def from_record(cls, record: str) -> ZipEntry:
        """Parse to_record's string; ValueError if it is not six non-negative integers."""
        parts = record.split(":")
        if len(parts) != _FIELDS or not all(part.isdigit() for part in parts):
            raise ValueError(f"malformed zip entry record {record!r}")
        return cls(*(int(part) for part in parts))


def read_entry(file: BinaryIO, entry: ZipEntry, max_bytes: int) -> bytes:
    """The entry's uncompressed bytes, read from `file` (the whole zip, opened in binary mode).

    Seeks to the local header and skips its name and extra field by the local header's own lengths (they
    may differ from the central directory's), then decompresses with zipfile's ZipExtFile, as ZipFile.open
    does, so every method zipfile supports works and the CRC is checked. At most file_size + 1 bytes are
    read, and an uncompressed size that does not match the data is an error. The compressed size is only a
    bound, as in zipfile (the upload scan read the entry the same way and accepted it).
    ValueError for anything wrong with the entry or the file.
    """
    _check_readable(entry, max_bytes)
    try:
        with _open_entry(file, entry) as source:
            data = source.read(entry.file_size + 1)
    except _CORRUPT as exc:
        raise ValueError(f"cannot read zip entry at offset {entry.header_offset}: {exc}") from exc
    _check_length(entry, len(data))
    return data


def extract_entry(file: BinaryIO, entry: ZipEntry, dest: BinaryIO, max_bytes: int) -> None:
    """Copy the entry's uncompressed bytes into `dest` chunk by chunk (a scene never held whole), checked as
    read_entry checks them (CRC, length); ValueError for anything wrong with the entry or the file."""
    _check_readable(entry, max_bytes)
    written = 0
    try:
        with _open_entry(file, entry) as source:
            while chunk := source.read(min(EXTRACT_CHUNK, entry.file_size + 1 - written)):
                dest.write(chunk)
                written += len(chunk)
                if written > entry.file_size:
                    break
    except _CORRUPT as exc:
        raise ValueError(f"cannot read zip entry at offset {entry.header_offset}: {exc}") from exc
    _check_length(entry, written)


def _check_readable(entry: ZipEntry, max_bytes: int) -> None:
    if entry.file_size > max_bytes:
        raise ValueError(f"zip entry is {entry.file_size} bytes, over the limit of {max_bytes}")
    if entry.flag_bits & _UNREADABLE_FLAGS:
        raise ValueError(f"zip entry is encrypted or patched (flags {entry.flag_bits:#x})")


def _check_length(entry: ZipEntry, length: int) -> None:
    if length != entry.file_size:
        raise ValueError(
            f"zip entry at offset {entry.header_offset} holds {length} bytes, not {entry.file_size}"
        )


def _open_entry(file: BinaryIO, entry: ZipEntry) -> zipfile.ZipExtFile:
    """The entry's decompressing reader, past its local header (whose own name and extra lengths count)."""
    file.seek(entry.header_offset)
    header = file.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        raise ValueError("truncated local file header")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != _LOCAL_SIGNATURE:
        raise ValueError("bad local file header signature")
    file.seek(name_length + extra_length, 1)
    return zipfile.ZipExtFile(file, "r", _zip_info(entry))


def _zip_info(entry: ZipEntry) -> zipfile.ZipInfo:
    """The ZipInfo that ZipExtFile needs: methods, sizes, CRC (the name only shows in its error messages)."""
    info = zipfile.ZipInfo(f"entry@{entry.header_offset}")
    info.compress_type = entry.compress_type
    info.compress_size = entry.compress_size
    info.file_size = entry.file_size
    info.CRC = entry.crc
    info.flag_bits = entry.flag_bits
    return info
