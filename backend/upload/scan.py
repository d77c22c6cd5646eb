"""Check every entry of an uploaded zip, treating every byte of it as hostile, and say where its images lie.

Nothing is extracted: the zip stays in the user's folder and the worker reads each image from it by the
ZipEntry recorded here (backend.upload.entries). Every candidate image is still decompressed once, in full,
with a running byte count, so that lying sizes, CRC errors and bombs are refused at upload time; its bytes
are then discarded.

Status codes of the UploadError raised: 413 (Payload Too Large) when the zip is, or would expand to, too much:
too many entries or images, declared or actual total size over the limit, a compression ratio over the limit;
400 for anything malformed: not a zip, empty, corrupt or truncated, an entry whose data does not match the
size its central directory declares, or a zip with no usable image. Entries that are merely unusable
(traversal names, symlinks, nested zips, non-images, empty files, dotfiles, __MACOSX, encrypted) are skipped
and listed with a reason; folder records are left out (nobody put them there on purpose); truncated images
and decompression bombs inside a valid image header are left to the ML service, whose 400/413 becomes a
per-image error.
"""

import lzma
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from backend.upload.directory import check_directory
from backend.upload.entries import ZipEntry
from backend.upload.errors import UploadError
from backend.upload.names import NameRegistry, Rejected, sanitize_entry_name

IMAGE_KINDS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"II+\x00": "TIFF",  # BigTIFF
    b"MM\x00+": "TIFF",
}
_COMPRESSIONS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_CORRUPT = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError)
CHUNK_BYTES = 1 << 20
# Entries smaller than this are exempt from the ratio check: a few KiB of zeros is no bomb, and the total
# size limit still bounds many small entries together.
RATIO_MIN_BYTES = 1 << 20
_SHOWN_SKIPS = 5
_SHOWN_NAME_CHARS = 300


@dataclass(frozen=True)
class ZipLimits:
    """Bounds on what one upload may expand to."""

    max_uncompressed_bytes: int
    max_ratio: float
    max_entries: int
    max_images: int


@dataclass(frozen=True)
class SkippedEntry:
    """A zip entry that will not be segmented, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class ZipImage:
    """An accepted image: `name` is its safe, unique relative posix path, `entry` where its bytes lie."""

    name: str
    entry: ZipEntry


@dataclass
class ZipScan:
    """The images accepted (in zip order) and the entries skipped (in zip order)."""

    images: list[ZipImage] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)


def scan_images(zip_path: Path, limits: ZipLimits) -> ZipScan:
    """Validate the zip and every candidate image in it; write nothing.

    Sizes in the zip are claims: every candidate entry is read with a running byte count that stops one byte
    past its declared size and at the total limit.
    """
    if zip_path.stat().st_size == 0:
        raise UploadError(400, "uploaded file is empty")
    check_directory(zip_path, limits.max_entries)
    with _open_zip(zip_path) as archive:
        infos = archive.infolist()
        _check_declared(infos, limits)
        skipped: dict[int, SkippedEntry] = {}
        planned: list[tuple[int, zipfile.ZipInfo, PurePosixPath]] = []
        for index, info in enumerate(infos):
            if info.filename.endswith("/") or (info.filename.endswith("\\") and not info.file_size):
                continue  # a folder record: nothing the user put there, so not listed as skipped
            verdict = _classify(info)
            if isinstance(verdict, Rejected):
                skipped[index] = _skip(info, verdict.reason)
            else:
                planned.append((index, info, verdict))
        if len(planned) > limits.max_images:
            raise UploadError(413, f"too many images in zip ({len(planned)} > {limits.max_images})")
        registry = NameRegistry()
        budget = _Budget(limits.max_uncompressed_bytes)
        images: list[ZipImage] = []
        for index, info, rel in planned:
            result = _check_entry(archive, info, rel, registry, budget)
            if isinstance(result, Rejected):
                skipped[index] = _skip(info, result.reason)
            else:
                images.append(result)
    ordered = [skipped[index] for index in sorted(skipped)]
    if not images:
        raise UploadError(400, _no_images_detail(ordered))
    return ZipScan(images=images, skipped=ordered)


def _open_zip(zip_path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(zip_path)
    except (*_CORRUPT, NotImplementedError, IndexError, KeyError) as exc:
        with zip_path.open("rb") as fh:
            head = fh.read(16)
        if head.startswith(b"PK"):
            # zipfile says "File is not a zip file" whenever the end record is missing, as in a truncated zip.
            why = "" if str(exc) == "File is not a zip file" else f" ({exc})"
            raise UploadError(400, f"corrupt or truncated zip file{why}") from exc
        kind = next((kind for sig, kind in _SIGNATURES.items() if head.startswith(sig)), None)
        if kind:
            ext = {"PNG": "png", "JPEG": "jpg", "TIFF": "tif"}[kind]
            hint = f"zip it first, e.g. zip scenes.zip *.{ext}"
            raise UploadError(400, f"not a zip file but a {kind} image: {hint}") from exc
        raise UploadError(400, "not a zip file: upload a .zip of PNG, JPEG or TIFF images") from exc


def _check_declared(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    """Cheap rejections from the directory's claims; the running counts in _check_entry enforce them."""
    if not infos:
        raise UploadError(400, "zip file is empty")
    if len(infos) > limits.max_entries:
        raise UploadError(413, f"too many entries in zip ({len(infos)} > {limits.max_entries})")
    total = sum(info.file_size for info in infos)
    if total > limits.max_uncompressed_bytes:
        raise UploadError(
            413, f"zip would expand to {total} bytes, over the limit of {limits.max_uncompressed_bytes}"
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_MIN_BYTES and ratio > limits.max_ratio:
            raise UploadError(
                413,
                f"entry {_shown(info.filename)!r} has compression ratio {ratio:.0f}:1, "
                f"over the limit of {limits.max_ratio:g}:1 (zip bomb)",
            )


def _classify(info: zipfile.ZipInfo) -> PurePosixPath | Rejected:
    """Decide from the directory record alone whether an entry is a candidate image."""
    path = sanitize_entry_name(info.filename)
    if isinstance(path, Rejected):
        return path
    if info.filename.endswith("\\"):
        return Rejected("directory")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return Rejected("symbolic link")
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return Rejected("not a regular file")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return Rejected("nested zip archive (not opened)")
    if suffix not in IMAGE_KINDS:
        return Rejected(f"not an image ({suffix or 'no extension'})")
    if info.flag_bits & 0x41:  # bit 0: encrypted, bit 6: strong encryption
        return Rejected("encrypted")
    if info.flag_bits & 0x20:
        return Rejected("compressed patched data (not supported)")
    if info.compress_type not in _COMPRESSIONS:
        return Rejected(f"unsupported compression method {info.compress_type}")
    if info.file_size == 0:
        return Rejected("empty file")
    return path


class _Budget:
    """Running count of bytes actually decompressed across all entries."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise UploadError(413, f"zip expands to more than the limit of {self.limit} bytes")


def _check_entry(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    rel: PurePosixPath,
    registry: NameRegistry,
    budget: _Budget,
) -> ZipImage | Rejected:
    """Read the entry in full (its bytes are discarded) and accept it under a unique name, or say why not."""
    limit = info.file_size + 1  # read one byte past the claim to notice a lie
    try:
        source = archive.open(info)
    except _CORRUPT as exc:
        raise UploadError(400, f"corrupt zip entry {_shown(info.filename)!r} ({exc})") from exc
    with source:
        head = _read(source, min(CHUNK_BYTES, limit), info)
        if not head:
            return Rejected("empty file")
        kind = next((kind for sig, kind in _SIGNATURES.items() if head.startswith(sig)), None)
        expected = IMAGE_KINDS[rel.suffix.lower()]
        if kind is None:
            return Rejected("not an image (content is not PNG, JPEG or TIFF)")
        if kind != expected:
            return Rejected(f"content is {kind} but the extension says {expected}")
        name = registry.claim(rel)
        if isinstance(name, Rejected):
            return name
        read, chunk = 0, head
        while chunk:
            read += len(chunk)
            if read > info.file_size:
                raise UploadError(400, f"entry {_shown(info.filename)!r} is larger than declared")
            budget.take(len(chunk))
            chunk = _read(source, min(CHUNK_BYTES, limit - read), info)
    if read != info.file_size:
        raise UploadError(400, f"entry {_shown(info.filename)!r} is smaller than declared")
    return ZipImage(name=str(name), entry=ZipEntry.from_info(info))


def _read(source: IO[bytes], size: int, info: zipfile.ZipInfo) -> bytes:
    try:
        return source.read(size)
    except _CORRUPT as exc:
        raise UploadError(400, f"corrupt zip entry {_shown(info.filename)!r} ({exc})") from exc


def _skip(info: zipfile.ZipInfo, reason: str) -> SkippedEntry:
    return SkippedEntry(name=_shown(info.filename), reason=reason)


def _shown(name: str) -> str:
    return name if len(name) <= _SHOWN_NAME_CHARS else name[:_SHOWN_NAME_CHARS] + "…"


def _no_images_detail(skipped: list[SkippedEntry]) -> str:
    kinds = "/".join(IMAGE_KINDS)
    if not skipped:
        return f"no images found in zip (expected {kinds} files)"
    shown = "; ".join(f"{entry.name}: {entry.reason}" for entry in skipped[:_SHOWN_SKIPS])
    more = f"; and {len(skipped) - _SHOWN_SKIPS} more" if len(skipped) > _SHOWN_SKIPS else ""
    return f"no images found in zip (expected {kinds} files); skipped {len(skipped)}: {shown}{more}"
