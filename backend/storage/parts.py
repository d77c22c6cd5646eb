"""Result parts: the masks, overlays and slicks of one ML request, kept together in one stored zip.

Creating a file costs about 0.3 ms of kernel time on a typical virtual disk, a few percent of a 256x256 tile's
model time; writing a mask and an overlay file per tile made that the worker's largest cost. A part holds the
outputs of up to IMAGES_PER_TASK images under the names they get in the archive (`masks/<out>`,
`overlays/<out>`, and `slicks/<stem>.geojson`, `masks/<stem>.tif` where the ML service made them, `<stem>`
being `<out>` without `.png`), so the archive is assembled by copying entries and the web page's overlays
and slicks are read from it. A part is written whole under a temporary name and renamed: it exists
complete or not at all. Only the PNGs are required of a part (one written before slicks existed has none).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from common import stored_zip

MASKS = "masks/"
OVERLAYS = "overlays/"
SLICKS = "slicks/"
CHUNK_BYTES = 1 << 20
_READ_ERRORS = (OSError, zipfile.BadZipFile, KeyError, EOFError, ValueError)
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # APPNOTE 4.3.7, as zipfile writes it
_LOCAL_SIGNATURE = b"PK\x03\x04"
_DATA_DESCRIPTOR = 0x08  # general purpose flag bit 3: sizes and CRC follow the data instead


@dataclass(frozen=True)
class Outputs:
    """One image's files: `output` is its name under masks/ and overlays/."""

    output: str
    mask_png: bytes
    overlay_png: bytes
    slicks_geojson: bytes | None = None  # the image's slicks (GeoJSON FeatureCollection)
    mask_tif: bytes | None = None  # COG mask, georeferenced images only

    def entries(self) -> Iterator[tuple[str, bytes]]:
        """(archive name, bytes) of each of its files, in the order of entry_names."""
        yield MASKS + self.output, self.mask_png
        yield OVERLAYS + self.output, self.overlay_png
        if self.mask_tif is not None:
            yield geo_mask_name(self.output), self.mask_tif
        if self.slicks_geojson is not None:
            yield slicks_name(self.output), self.slicks_geojson


def stem(output: str) -> str:
    """An output's name without its .png: the name of its other files."""
    return output.removesuffix(".png")


def geo_mask_name(output: str) -> str:
    """Where the COG mask of `output` lies in a part and in the archive: masks/<stem>.tif."""
    return f"{MASKS}{stem(output)}.tif"


def slicks_name(output: str) -> str:
    """Where the slicks of `output` lie in a part and in the archive: slicks/<stem>.geojson."""
    return f"{SLICKS}{stem(output)}.geojson"


def entry_names(output: str) -> tuple[str, str, str, str]:
    """Every name a part may hold for `output`, in the order written: PNG mask, overlay, COG, slicks."""
    return MASKS + output, OVERLAYS + output, geo_mask_name(output), slicks_name(output)


def part_id(names: Iterable[str]) -> str:
    """The part of a request for these input names: a redelivered request overwrites its own part."""
    encoded = json.dumps(list(names)).encode()  # unambiguous, whatever characters the names hold
    digest = hashlib.sha256(encoded).hexdigest()
    return digest[:32]


def write_part(path: Path, items: Iterable[Outputs]) -> None:
    """Write the images' files as one stored zip, atomically (temporary name, then os.replace).

    PNGs and COGs are stored, not deflated again: they are compressed already (the GeoJSON, small next to
    them, is stored too, so an entry can be copied as it lies). The zip is built in memory
    (common.stored_zip, ISA-L's CRCs) and written with one call: zipfile writing to a file seeks back over
    every entry's header, and each seek flushes.
    """
    body = stored_zip.write(entry for item in items for entry in item.entries())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(body)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def open_overlay(path: Path, output: str) -> tuple[int, Iterator[bytes]] | None:
    """(size, chunks) of the overlay PNG of `output` in a part; None if the part or the entry is missing.

    The chunks are read lazily, so serving a 10000x10000 scene's overlay never holds it in memory.
    """
    try:
        zf = zipfile.ZipFile(path)
    except _READ_ERRORS:
        return None
    try:
        info = zf.getinfo(OVERLAYS + output)
        reader = zf.open(info)
    except _READ_ERRORS:
        zf.close()
        return None

    def chunks() -> Iterator[bytes]:
        with zf, reader:
            while chunk := reader.read(CHUNK_BYTES):
                yield chunk

    return info.file_size, chunks()


def complete(path: Path, outputs: Iterable[str]) -> bool:
    """Whether the part exists and lists the PNG mask and overlay of every one of `outputs`."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except _READ_ERRORS:
        return False
    return all(MASKS + out in names and OVERLAYS + out in names for out in outputs)


def copy_outputs(dest: zipfile.ZipFile, path: Path, outputs: Iterable[str]) -> None:
    """Copy the files of each of `outputs` from a part into `dest` (an archive being written): the PNG mask
    and overlay, and the COG mask and slicks where the part has them.

    The entries are copied as they lie in the part, local header and stored bytes, without decoding or
    checksumming them again (the CRC comes with the header); `dest` then lists them in its central
    directory. Copying through zipfile's readers and writers computed two CRCs of every byte and took most
    of the time of closing a job. Memory stays at one chunk however large the scenes are.
    """
    with zipfile.ZipFile(path) as src, path.open("rb") as raw:
        infos = src.infolist()
        present = {info.filename for info in infos}
        wanted = [  # the PNGs always (a part without them is a KeyError), the others if there
            name for out in outputs for i, name in enumerate(entry_names(out)) if i < 2 or name in present
        ]
        if [info.filename for info in infos] == wanted and all(map(_copyable, infos)):
            _copy_all(dest, raw, infos, src.start_dir)  # the usual case: the whole part, as it lies
            return
        for name in wanted:
            _copy_entry(dest, raw, src.getinfo(name))


def _copyable(info: zipfile.ZipInfo) -> bool:
    return info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & _DATA_DESCRIPTOR


def _copy_all(dest: zipfile.ZipFile, raw: BinaryIO, infos: list[zipfile.ZipInfo], end: int) -> None:
    """Append every entry of a part (its bytes up to its central directory) to `dest` in one copy.

    The kernel copies the bytes file to file (os.copy_file_range); the entries' offsets are shifted by
    where they land. Where the first entry does not start the file, or the call is unsupported, the bytes
    go through user space in chunks instead.
    """
    out = dest.fp
    assert out is not None  # an archive open for writing
    start = infos[0].header_offset
    at = dest.start_dir
    out.seek(at)
    out.flush()
    left = end - start
    try:
        while left > 0:
            copied = os.copy_file_range(raw.fileno(), out.fileno(), left, start + (end - start - left), at)
            if copied == 0:
                raise zipfile.BadZipFile(f"{raw.name}: the part ends before its central directory")
            at += copied
            left -= copied
    except (AttributeError, OSError):  # no copy_file_range here (or not between these files)
        raw.seek(start + (end - start - left))
        out.seek(at)
        while left > 0:
            chunk = raw.read(min(CHUNK_BYTES, left))
            if not chunk:
                raise zipfile.BadZipFile(f"{raw.name}: the part ends before its central directory") from None
            out.write(chunk)
            at += len(chunk)
            left -= len(chunk)
    out.seek(at)
    shift = dest.start_dir - start
    for info in infos:
        info.header_offset += shift  # the source's ZipInfo, read for this copy only, becomes the archive's
        dest.filelist.append(info)
        dest.NameToInfo[info.filename] = info
    dest.start_dir = at


def _copy_entry(dest: zipfile.ZipFile, raw: BinaryIO, info: zipfile.ZipInfo) -> None:
    """Append one stored entry of the zip open as `raw` (described by `info`) to `dest`, as is."""
    if not _copyable(info):
        raise ValueError(f"{info.filename}: not a stored entry with its sizes in the header")
    raw.seek(info.header_offset)
    header = raw.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
        raise zipfile.BadZipFile(f"{info.filename}: no local header at offset {info.header_offset}")
    *_, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    left = name_length + extra_length + info.compress_size
    out = dest.fp
    assert out is not None  # an archive open for writing
    # zipfile puts the next entry at start_dir; a seek flushes the buffer, so only when not there already.
    if out.tell() != dest.start_dir:
        out.seek(dest.start_dir)
    # The source's ZipInfo, read for this copy only, becomes the archive's.
    info.header_offset = dest.start_dir
    out.write(header)
    while left > 0:
        chunk = raw.read(min(CHUNK_BYTES, left))
        if not chunk:
            raise zipfile.BadZipFile(f"{info.filename}: the part ends inside the entry")
        out.write(chunk)
        left -= len(chunk)
    dest.start_dir = out.tell()
    dest.filelist.append(info)
    dest.NameToInfo[info.filename] = info
