"""Layout of RESULTS_DIR (a ResultsDir), the token format, and the few disk operations the pipeline needs.

results/<user_hash>/upload.zip          the uploaded zip; images are read from it
results/<user_hash>/parts/<part>.zip    masks/<out>.png (0/255) and overlays/<out>.png (oil in translucent
                                        red) of one ML request (backend.storage.parts)
results/<user_hash>/work/<token>.tif    a scene extracted from upload.zip while the ML service reads it
                                        (backend.worker.scenes); deleted once segmented
results/<user_hash>/archive.zip         what GET /api/download serves
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from backend.upload.names import collision_key

TOKEN_BYTES = 16  # 128 bits, rendered as 32 lowercase hex characters
TOKEN_RE = re.compile(r"[0-9a-f]{32}")


def new_token() -> str:
    """A fresh unguessable token (job ids and user hashes): 128 random bits as hex."""
    return secrets.token_hex(TOKEN_BYTES)


def is_token(value: str) -> bool:
    return TOKEN_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class UserDir:
    """The folder of one upload; only built from a validated token, so it can never escape RESULTS_DIR."""

    root: Path

    @property
    def upload(self) -> Path:
        return self.root / "upload.zip"

    @property
    def parts(self) -> Path:
        return self.root / "parts"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def archive(self) -> Path:
        return self.root / "archive.zip"

    def part_path(self, part: str) -> Path:
        """The zip of a part id (a token: it cannot name anything but a file directly in parts/)."""
        if not is_token(part):
            raise ValueError(f"not a part id: {part!r}")
        return self.parts / f"{part}.zip"


@dataclass(frozen=True)
class ResultsDir:
    """RESULTS_DIR: one folder per upload, named by its user hash; nothing is written elsewhere."""

    root: Path

    def user(self, user_hash: str) -> UserDir:
        """The folder of `user_hash` (not created); ValueError unless it is a token."""
        if not is_token(user_hash):
            raise ValueError(f"not a user hash: {user_hash!r}")
        return UserDir(self.root / user_hash)

    def make_private(self) -> None:
        """From now on this process creates files 0600 and folders 0700 (umask 077), RESULTS_DIR included
        (made 0700 if it exists; created so later): its folders are named by user hash, the download key."""
        os.umask(0o077)
        if self.root.is_dir():
            self.root.chmod(0o700)

    def delete_user(self, user_hash: str) -> bool:
        """Remove results/<user_hash> entirely; True if it existed. Idempotent: a missing folder is fine."""
        root = self.user(user_hash).root
        existed = root.exists()
        shutil.rmtree(root, ignore_errors=True)
        return existed and not root.exists()

    def free_disk_mb(self) -> float:
        """Free space on the filesystem that holds the folder (or its nearest existing parent)."""
        return free_disk_mb(self.root)

    def users(self) -> Iterator[tuple[str, float]]:
        """(user_hash, newest mtime of the folder and its direct children) for each token-named folder."""
        if not self.root.is_dir():
            return
        for entry in os.scandir(self.root):
            if not (entry.is_dir(follow_symlinks=False) and is_token(entry.name)):
                continue
            newest = entry.stat(follow_symlinks=False).st_mtime
            try:
                for child in os.scandir(entry.path):
                    newest = max(newest, child.stat(follow_symlinks=False).st_mtime)
            except FileNotFoundError:
                continue
            yield entry.name, newest


def output_names(names: Iterable[str]) -> dict[str, str]:
    """Map each input's relative path to its mask/overlay name (the one scheme, in the README).

    The name is the input's path with its extension replaced by .png, folders kept (a/x.jpg -> a/x.png).
    Inputs that would share that name, ignoring case and Unicode compatibility forms as Windows and macOS do
    when the archive is unpacked, all keep their whole name instead (x.jpg -> x.jpg.png, x.png -> x.png.png).
    Names that still clash (a.png and A.PNG) get ~2, ~3 before .png, in code-point order of the inputs, so
    the mapping is deterministic: A.PNG -> A.PNG.png, a.png -> a.png~2.png.
    """
    names = sorted(set(names))
    by_stem: defaultdict[str, list[str]] = defaultdict(list)
    for name in names:
        by_stem[collision_key(PurePosixPath(name).with_suffix(""))].append(name)
    wanted = {}
    for group in by_stem.values():
        for name in group:
            path = PurePosixPath(name)
            wanted[name] = f"{path if len(group) > 1 else path.with_suffix('')}.png"
    taken: set[str] = set()
    result = {}
    for name in names:
        out, n = wanted[name], 1
        while collision_key(PurePosixPath(out)) in taken:
            n += 1
            out = f"{wanted[name].removesuffix('.png')}~{n}.png"
        taken.add(collision_key(PurePosixPath(out)))
        result[name] = out
    return result


def free_disk_mb(path: Path) -> float:
    """Free space on the filesystem that holds `path` (or its nearest existing parent)."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free / (1024 * 1024)
