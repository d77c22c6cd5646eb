"""Where a finished job's archive goes: --out checked before any work, slicks listed, the zip saved whole.

Shared by `oilspill upload` and `oilspill area` (backend.cli.main, backend.cli.area) after their 202.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from backend.cli import slicks
from backend.cli.http import EXIT_JOB_FAILED, EXIT_USAGE, CLIError
from backend.cli.http import check as _check
from backend.cli.progress import Progress, human_bytes

# The archive's name as the API gives it (Content-Disposition), so the CLI, the browser and `curl -OJ` agree.
_ARCHIVE_NAME = re.compile(r'filename="?(oilspill-[0-9a-f]{32}\.zip)"?')


def check_out(out: Path | None) -> None:
    """Refuse an --out that cannot be written before anything is uploaded or downloaded."""
    if out is None:
        return
    folder = out.parent
    if out.is_dir():
        raise CLIError(f"cannot write {out}: it is a folder", EXIT_USAGE)
    if not folder.is_dir():
        raise CLIError(f"cannot write {out}: no folder {folder}", EXIT_USAGE)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write {out}: the folder {folder} is not writable", EXIT_USAGE)


Follow = Callable[[httpx.Client, str, float], dict[str, Any]]


def follow_to_archive(
    client: httpx.Client, args: argparse.Namespace, job: dict[str, Any], follow: Follow
) -> int:
    """After a 202 (an upload's or an area job's): where to look, or follow it, list its slicks, save it."""
    if not (args.wait or args.out):
        print(f"status: {args.api.rstrip('/')}{job['status_url']}")
        return 0
    if follow(client, job["job_id"], args.poll)["state"] != "completed":
        return EXIT_JOB_FAILED
    print_slicks(client, job["user_hash"])
    if args.out:
        download(client, job["user_hash"], args.out)
    else:
        print(f"download: {args.api.rstrip('/')}{job['download_url']}")
    return 0


def download(client: httpx.Client, user_hash: str, out: Path | None) -> None:
    """Stream the archive to `out` through a .part file, so a broken download leaves no truncated zip.

    Without `out`, the archive takes the name the API gives it (oilspill-<job_id>.zip) in the current folder.
    """
    with client.stream("GET", f"/api/download/{user_hash}") as response:
        _check(response)
        if out is None:
            found = _ARCHIVE_NAME.search(response.headers.get("content-disposition", ""))
            out = Path(found.group(1) if found else f"oilspill-{user_hash}.zip")
        save(response, out)
    print(f"saved {out} ({human_bytes(out.stat().st_size)})")


def save(response: httpx.Response, out: Path) -> None:
    partial = out.with_name(out.name + ".part")
    progress = Progress(f"download {out.name}", unit="bytes")
    try:
        total = int(response.headers.get("content-length", 0)) or None
        received = 0
        with partial.open("wb") as sink:
            for chunk in response.iter_bytes(1024 * 1024):
                sink.write(chunk)
                received += len(chunk)
                progress.update(received, total)
        partial.replace(out)
    except OSError as exc:
        raise CLIError(f"cannot write {out}: {exc.strerror or exc}", EXIT_USAGE) from exc
    finally:
        progress.close()
        partial.unlink(missing_ok=True)


def print_slicks(client: httpx.Client, user_hash: str) -> None:
    """The finished job's slick table; a problem fetching it is a warning (the job itself is done)."""
    try:
        print(slicks.table(slicks.fetch(client, user_hash)))
    except CLIError as exc:
        print(f"warning: cannot list the slicks: {exc}", file=sys.stderr)
