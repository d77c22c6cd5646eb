"""Disk space reserved per upload for everything its job will write, so parallel uploads cannot fill the disk.

A job writes about DISK_RESERVE_FACTOR times its upload (parts with masks, overlays, COGs and slicks, then
the archive: 2.7x measured), on top of the upload itself. Each upload reserves that much in one Redis hash
shared by every API process; what a reservation still lacks is what it reserved less what its folder holds.
An upload is refused (507) when free space, less what every reservation lacks, would fall under
MIN_FREE_DISK_MB. A reservation ends when its job closes (or its upload fails); the sweeper drops those whose
folder is gone.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from backend.jobs.store import Redis
from backend.storage.layout import ResultsDir

RESERVED_KEY = "oilspill:disk:reserved"  # field: the folder's name; value: bytes reserved for it
MB = 1024 * 1024
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class NoSpace(Exception):
    """Not enough free disk for this upload and what its job will write."""

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"needs {needed / MB:.0f} MB, {max(0, available) / MB:.0f} MB available")
        self.needed, self.available = needed, available


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


def folder_bytes(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue  # a temporary file renamed or removed meanwhile
    return total


class DiskReservations:
    def __init__(self, client: Redis, results: ResultsDir, *, factor: float, floor_mb: float) -> None:
        self.client, self.results = client, results
        self.factor, self.floor = factor, int(floor_mb * MB)

    def lacking(self) -> int:
        """What the reservations still lack: reserved bytes not yet written by their folders."""
        reserved: dict[str, str] = self.client.hgetall(RESERVED_KEY)  # type: ignore[assignment]
        return sum(
            max(0, int(size) - folder_bytes(self.results.root / name)) for name, size in reserved.items()
        )

    def reserve(self, name: str, upload_bytes: int) -> None:
        """Reserve the upload and what its job will write for the folder `name`; NoSpace if it does not fit.

        Added first, then checked: two uploads racing may both be refused, never both accepted past the floor.
        """
        needed = int(upload_bytes * (1 + self.factor))
        self.client.hset(RESERVED_KEY, name, needed)
        others = self.lacking() - needed  # this folder holds nothing yet
        available = int(self.results.free_disk_mb() * MB) - self.floor - others
        if needed > available:
            self.release(name)
            raise NoSpace(needed, available)

    def release(self, name: str) -> None:
        self.client.hdel(RESERVED_KEY, name)

    def prune(self) -> list[str]:
        """Drop the reservations whose folder is gone (an API process died mid-upload, a job expired)."""
        names: list[str] = self.client.hkeys(RESERVED_KEY)  # type: ignore[assignment]
        gone = [name for name in names if not (self.results.root / name).exists()]
        if gone:
            self.client.hdel(RESERVED_KEY, *gone)
        return gone
