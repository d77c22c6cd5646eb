"""Read a zip's end-of-central-directory record before zipfile parses the whole directory.

zipfile builds one ZipInfo object per central-directory record up front, so a small upload holding millions
of tiny records could exhaust memory before any limit is looked at. The end record states the entry count and
directory size in a few bytes at the end of the file; reject oversized directories from those first.
"""

import struct
from dataclasses import dataclass
from pathlib import Path

from backend.upload.errors import UploadError

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
_MAX_COMMENT = 0xFFFF
# Upper bound on the central directory's size per allowed entry (a 46-byte record plus name and extras).
DIRECTORY_BYTES_PER_ENTRY = 2048


@dataclass(frozen=True)
class DirectorySummary:
    """What the end record claims: number of entries and size in bytes of the central directory."""

    entries: int
    size: int


def read_directory_summary(zip_path: Path) -> DirectorySummary | None:
    """Return the end record's claims, or None without an end record (zipfile then reports the error)."""
    with zip_path.open("rb") as fh:
        fh.seek(0, 2)
        file_size = fh.tell()
        tail_size = min(file_size, _EOCD.size + _MAX_COMMENT)
        fh.seek(file_size - tail_size)
        tail = fh.read(tail_size)
        at = tail.rfind(_EOCD_SIGNATURE)
        if at < 0 or at + _EOCD.size > len(tail):
            return None
        fields = _EOCD.unpack_from(tail, at)
        entries, size = fields[4], fields[5]
        if entries != 0xFFFF and size != 0xFFFFFFFF:
            return DirectorySummary(entries=entries, size=size)
        # ZIP64: the real figures are in another record, found through a locator just before the end record.
        locator_at = at - _ZIP64_LOCATOR.size
        if locator_at < 0:
            return DirectorySummary(entries=entries, size=size)
        signature, _, zip64_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, locator_at)
        if signature != _ZIP64_LOCATOR_SIGNATURE or zip64_offset + _ZIP64_EOCD.size > file_size:
            return DirectorySummary(entries=entries, size=size)
        fh.seek(zip64_offset)
        record = fh.read(_ZIP64_EOCD.size)
        zip64 = _ZIP64_EOCD.unpack(record)
        if zip64[0] != _ZIP64_EOCD_SIGNATURE:
            return DirectorySummary(entries=entries, size=size)
        return DirectorySummary(entries=zip64[7], size=zip64[8])


def check_directory(zip_path: Path, max_entries: int) -> None:
    """Raise UploadError(413) when the end record claims more entries, or a bigger directory, than allowed."""
    summary = read_directory_summary(zip_path)
    if summary is None:
        return
    if summary.entries > max_entries:
        raise UploadError(413, f"too many entries in zip ({summary.entries} > {max_entries})")
    if summary.size > max_entries * DIRECTORY_BYTES_PER_ENTRY:
        raise UploadError(413, f"zip central directory too large ({summary.size} bytes)")
