"""Progress bars for the command-line client, on stderr and without dependencies.

On a terminal the bar is redrawn in place; in a log (CI, a pipe) it prints a line per 10 % so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import IO, BinaryIO, TextIO, cast

WIDTH = 30


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """A bar for `label`: update(done, total); `unit="bytes"` shows sizes, else counts (images)."""

    def __init__(self, label: str, *, unit: str = "", stream: TextIO | None = None) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last_step = -1
        self._last_draw = 0.0
        self._drawn = False

    def _amount(self, value: float) -> str:
        return human_bytes(value) if self.unit == "bytes" else f"{value:g}"

    def update(self, done: float, total: float | None) -> None:
        fraction = min(1.0, done / total) if total else None
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < 0.1 and fraction != 1.0:
                return  # redrawing faster than the eye is wasted work on a fast upload
            self._last_draw = now
            self.stream.write("\r" + self._line(done, total, fraction) + "\033[K")
            self._drawn = True
        else:
            step = int(fraction * 10) if fraction is not None else 0
            if step != self._last_step:
                self._last_step = step
                self.stream.write(self._line(done, total, fraction) + "\n")
        self.stream.flush()

    def _line(self, done: float, total: float | None, fraction: float | None) -> str:
        if fraction is None:
            return f"{self.label}: {self._amount(done)}"
        filled = round(WIDTH * fraction)
        bar = "#" * filled + "." * (WIDTH - filled)
        amounts = f"{self._amount(done)}/{self._amount(total or 0)}"
        unit = "" if self.unit == "bytes" else self.unit
        return f"{self.label} [{bar}] {fraction:4.0%} {amounts} {unit}".rstrip()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


class ProgressReader:
    """A file opened for reading that reports each chunk httpx reads from it, so uploads stream from disk."""

    def __init__(self, file: BinaryIO, progress: Progress, total: int) -> None:
        self._file = file
        self._progress = progress
        self._total = total
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._read += len(chunk)
        self._progress.update(self._read, self._total)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._file.seek(offset, whence)
        self._read = position
        return position

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()  # lets httpx take the length from fstat and send a Content-Length

    def as_file(self) -> IO[bytes]:
        """This reader where a file is expected: httpx calls only read, seek, tell and fileno."""
        return cast(IO[bytes], self)
