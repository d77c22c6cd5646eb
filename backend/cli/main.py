"""The API client behind `oilspill upload scenes.zip --wait --out masks.zip` (or `python -m backend.cli`).

Exit codes: 0 done, 1 the job failed, 2 bad usage or unreadable local file, 3 the API cannot be reached,
4 the API refused the request (its `detail` is printed); 141 (as if killed by SIGPIPE) when whoever reads
the output stops reading (`oilspill status --json | head`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from backend.cli import account, archive, area, keys, slicks
from backend.cli.http import EXIT_JOB_FAILED, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, CLIError
from backend.cli.http import check as _check
from backend.cli.progress import Progress, ProgressReader

DEFAULT_API = "http://127.0.0.1:8000"
ACTIVE = ("queued", "searching", "fetching", "processing", "archiving")
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process killed by SIGPIPE

__all__ = ["EXIT_JOB_FAILED", "EXIT_REFUSED", "EXIT_UNREACHABLE", "EXIT_USAGE", "CLIError", "main", "parser"]


def _ops_token(api: str) -> str | None:
    """OILSPILL_OPS_TOKEN, or for an API on this machine the token it wrote (OILSPILL_OPS_TOKEN_FILE)."""
    if token := os.environ.get("OILSPILL_OPS_TOKEN"):
        return token
    if httpx.URL(api).host not in ("127.0.0.1", "localhost", "::1"):
        return None  # never send this machine's token to another server
    path = Path(os.environ.get("OILSPILL_OPS_TOKEN_FILE", "var/ops-token"))
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _client(args: argparse.Namespace) -> httpx.Client:
    timeout = httpx.Timeout(args.timeout, connect=10.0)
    token = args.key or _ops_token(args.api)  # an API key (or JWT) when given, else the operator token
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return httpx.Client(base_url=args.api.rstrip("/"), timeout=timeout, headers=headers)


def _print_json(body: Any) -> None:
    print(json.dumps(body, indent=2))


def upload(args: argparse.Namespace) -> int:
    path: Path = args.zip
    archive.check_out(args.out)
    try:
        size = path.stat().st_size
        file = path.open("rb")
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    progress = Progress(f"upload {path.name}", unit="bytes")
    with _client(args) as client, file:
        try:
            response = client.post(
                "/api/upload",
                files={
                    "file": (path.name, ProgressReader(file, progress, size).as_file(), "application/zip")
                },
            )
        except (httpx.WriteError, httpx.RemoteProtocolError) as exc:
            raise CLIError(
                f"the API closed the connection during the upload ({exc}); is the zip over its size limit?",
                EXIT_REFUSED,
            ) from exc
        finally:
            progress.close()
        body = _check(response).json()
        for skipped in body["skipped"]:
            print(f"skipped {skipped['name']}: {skipped['reason']}", file=sys.stderr)
        if args.json and not (args.wait or args.out):
            _print_json(body)
            return 0
        print(f"job {body['job_id']}: {body['images']} images queued; user hash {body['user_hash']}")
        return archive.follow_to_archive(client, args, body, _wait)


def _wait(client: httpx.Client, job_id: str, poll: float) -> dict[str, Any]:
    """Follow the job until it leaves the active states, with a bar of images processed; report its outcome.

    Each status request is a long poll of `poll` seconds: the progress is refreshed that often, and the
    end is seen the moment it happens.
    """
    progress = Progress(f"job {job_id[:8]}", unit="images")
    try:
        while True:
            answer = client.get(f"/api/status/{job_id}", params={"wait": poll})
            job: dict[str, Any] = _check(answer).json()
            progress.update(job["done"] + job["failed"], job["total"])
            if job["state"] not in ACTIVE:
                break
    finally:
        progress.close()
    for error in job["errors"]:
        print(f"failed {error['name']}: {error['error']}", file=sys.stderr)
    counts = f"{job['done']} of {job['total']} images segmented, {job['failed']} failed"
    print(f"job {job_id} {job['state']}: {counts}")
    return job


def show_slicks(args: argparse.Namespace) -> int:
    with _client(args) as client:
        collection = slicks.fetch(client, args.key)
    if args.json:
        _print_json(collection)
    else:
        print(slicks.table(collection))
    return 0


def download(args: argparse.Namespace) -> int:
    archive.check_out(args.out)
    with _client(args) as client:
        archive.download(client, args.user_hash, args.out)
    return 0


def status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = _check(client.get(f"/api/status/{args.job_id}")).json()
    code = EXIT_JOB_FAILED if job["state"] == "failed" else 0
    if args.json:
        _print_json(job)
        return code
    print(
        f"job {job['job_id']}: {job['state']}, {job['done']} of {job['total']} images, {job['failed']} failed"
    )
    for error in job["errors"]:
        print(f"  failed {error['name']}: {error['error']}")
    if (job.get("area") or {}).get("reason"):
        print(f"  {job['area']['reason']}")
    if job["expires_at"]:
        print(f"  files {'were' if job['state'] == 'expired' else 'are'} deleted at {job['expires_at']}")
    return code


def tasks(args: argparse.Namespace) -> int:
    params: dict[str, str | int] = {"limit": args.limit, "offset": args.offset}
    if args.state:
        params["state"] = args.state
    with _client(args) as client:
        page = _check(client.get("/api/tasks", params=params)).json()
    if args.json:
        _print_json(page)
        return 0
    print(f"{'job id':32}  {'state':10}  {'created (UTC)':19}  {'done':>5}  {'failed':>6}  {'total':>5}")
    for job in page["items"]:
        created = job["created_at"][:19].replace("T", " ")
        row = f"{job['done']:>5}  {job['failed']:>6}  {job['total']:>5}"
        print(f"{job['job_id']:32}  {job['state']:10}  {created:19}  {row}")
    if page["next_offset"] is not None:
        print(f"(more: --offset {page['next_offset']})")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="oilspill", description="Oil-spill detection API client (also: python -m backend.cli)."
    )
    root.add_argument("--api", default=os.environ.get("OILSPILL_API", DEFAULT_API), help="API base URL")
    root.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each API answer")
    root.add_argument(
        "--key",
        default=os.environ.get("OILSPILL_API_KEY") or None,
        help="API key or bearer token sent as `Authorization: Bearer` (default: OILSPILL_API_KEY)",
    )
    commands = root.add_subparsers(dest="command", required=True)
    keys.add_commands(commands)

    up = commands.add_parser("upload", help="upload a zip of images and start a job")
    up.add_argument("zip", type=Path)
    up.add_argument("--wait", action="store_true", help="follow the job until it finishes")
    up.add_argument("--out", type=Path, help="save the results archive here (implies --wait)")
    up.add_argument("--poll", type=float, default=1.0, help="seconds between progress updates")
    up.set_defaults(run=upload)

    st = commands.add_parser("status", help="progress of a job")
    st.add_argument("job_id")
    st.set_defaults(run=status)

    dl = commands.add_parser("download", help="download the results archive of an upload")
    dl.add_argument("user_hash")
    dl.add_argument(
        "--out", type=Path, help="where to save it (default oilspill-<job_id>.zip, as the API names it)"
    )
    dl.set_defaults(run=download)

    sl = commands.add_parser("slicks", help="the slicks found in an upload, largest first")
    sl.add_argument("key", metavar="JOB_OR_HASH", help="the job id or the user hash of the upload")
    sl.set_defaults(run=show_slicks)

    ls = commands.add_parser("tasks", help="recent jobs, newest first")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--offset", type=int, default=0)
    ls.add_argument("--state", choices=[*ACTIVE, "completed", "failed", "expired"])
    ls.set_defaults(run=tasks)
    area.add_command(commands)  # oilspill area --bbox ... --date ... --source ...
    me = account.add_command(commands, _client)

    for sub in (up, st, sl, ls, me):
        sub.add_argument("--json", action="store_true", help="print the API's JSON answer")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """The `oilspill` command: run one command, return its exit code."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # a reader gone away shows here, not at exit as an "Exception ignored" warning
        return code
    except BrokenPipeError:
        # The reader stopped (`oilspill tasks --json | head`): end quietly, as Unix tools do on SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except httpx.TransportError as exc:
        print(
            f"error: cannot reach the API at {args.api} ({type(exc).__name__}: {exc}); "
            "is it running? Set --api or OILSPILL_API.",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
