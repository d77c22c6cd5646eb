"""Zip entry names -> safe relative paths, and deterministic de-duplication of those paths.

Entry names come from the uploader, so they are treated as hostile: no traversal, no absolute or drive paths,
no hidden or macOS-metadata files, no control characters, bounded length. The output is a relative
PurePosixPath that can be joined to a destination folder without escaping it.
"""

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

MAX_COMPONENT_BYTES = 200
MAX_PATH_BYTES = 1024
MAX_DEPTH = 32

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Rejected:
    """Why an entry name cannot be used; the entry is skipped with this reason."""

    reason: str


def sanitize_entry_name(raw: str) -> PurePosixPath | Rejected:
    """Map a zip entry name to a safe relative path, or say why it must be skipped.

    Backslashes count as separators (zips made on Windows use them); empty and "." components are dropped;
    trailing dots and spaces are dropped as Windows does; names are NFC-normalised so macOS (NFD) and other
    uploads agree; components over MAX_COMPONENT_BYTES are shortened (see shorten_component), not skipped.
    """
    if _CONTROL.search(raw):
        return Rejected("name contains control characters")
    name = unicodedata.normalize("NFC", raw).replace("\\", "/")
    if name.startswith("/"):
        return Rejected("absolute path")
    if _DRIVE.match(name):
        return Rejected("absolute path (drive letter)")
    if ":" in name:
        return Rejected("':' in name (drive or alternate data stream)")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts:
        return Rejected("empty name")
    if ".." in parts:
        return Rejected("path traversal ('..')")
    if "__MACOSX" in parts:
        return Rejected("macOS metadata (__MACOSX)")
    if any(part.startswith(".") for part in parts):
        return Rejected("hidden file or folder")
    # Windows drops trailing dots and spaces, so "x.png " would silently become "x.png" there anyway.
    parts = [part.rstrip(". ") for part in parts]
    if not all(parts):
        return Rejected("name component made only of spaces")
    if len(parts) > MAX_DEPTH:
        return Rejected(f"nested deeper than {MAX_DEPTH} folders")
    path = PurePosixPath(*(shorten_component(part) for part in parts))
    if len(str(path).encode()) > MAX_PATH_BYTES:
        return Rejected(f"path longer than {MAX_PATH_BYTES} bytes")
    return path


def shorten_component(part: str, limit: int = MAX_COMPONENT_BYTES) -> str:
    """Cut a name component to `limit` UTF-8 bytes, keeping its extension and a hash of the original.

    The hash keeps two long names that share a prefix distinct; the extension keeps the file type visible.
    """
    if len(part.encode()) <= limit:
        return part
    stem, dot, ext = part.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, ext = part, ""
    suffix = "~" + hashlib.sha256(part.encode()).hexdigest()[:10] + (f".{ext}" if ext else "")
    budget = limit - len(suffix.encode())
    cut = stem.encode()[:budget].decode("utf-8", errors="ignore")
    return cut + suffix


def collision_key(path: PurePosixPath) -> str:
    """Key under which two paths count as the same file on case-insensitive or normalising file systems."""
    return unicodedata.normalize("NFKC", str(path)).casefold()


class NameRegistry:
    """Hands out unique image names in entry order: the first keeps its name, a repeat gets " (2)"...

    Only the same name twice (after NFC, so a macOS NFD name and its NFC twin count as one) is renamed: names
    that differ only by case or Unicode compatibility form ("a.png", "A.PNG") are different entries of the zip
    and keep their names; their outputs are kept apart by backend.storage.layout.output_names. A path whose
    folder has the name of an earlier file (also by collision_key) is refused: unpacked, one would hide the
    other.
    """

    def __init__(self) -> None:
        self._files: set[str] = set()
        self._file_keys: set[str] = set()
        self._dirs: set[str] = set()

    def claim(self, path: PurePosixPath) -> PurePosixPath | Rejected:
        """Reserve `path` (or a numbered variant of it) and return what was reserved."""
        parents = [collision_key(parent) for parent in path.parents if parent != PurePosixPath(".")]
        if any(key in self._file_keys for key in parents):
            return Rejected("a folder in its path has the same name as an earlier file")
        candidate, number = path, 1
        while str(candidate) in self._files or collision_key(candidate) in self._dirs:
            number += 1
            candidate = path.with_name(shorten_component(f"{path.stem} ({number}){path.suffix}"))
        self._files.add(str(candidate))
        self._file_keys.add(collision_key(candidate))
        self._dirs.update(parents)
        return candidate
