"""`oilspill area`: ask for slicks in bounding boxes around a date (POST /api/area-jobs), follow the stages.

oilspill area --bbox 51.52,26.93,51.55,26.96 --date 2026-06-01 --source planetary-computer-grd --wait
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import httpx

from backend.cli import archive
from backend.cli.http import check as _check
from backend.cli.progress import human_bytes

ENDED = ("completed", "failed", "expired")


def bbox(text: str) -> list[float]:
    """min_lon,min_lat,max_lon,max_lat (the API checks the ranges)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"not min_lon,min_lat,max_lon,max_lat: {text!r}")
    return values


def add_command(commands: Any) -> None:
    """The `area` subcommand of the oilspill parser."""
    area = commands.add_parser("area", help="find slicks in bounding boxes around a date (STAC scenes)")
    area.add_argument(
        "--bbox", type=bbox, action="append", required=True, help="min_lon,min_lat,max_lon,max_lat"
    )
    area.add_argument("--date", required=True, help="the day of interest, YYYY-MM-DD (UTC)")
    area.add_argument("--tolerance", type=int, default=3, help="days before and after the date")
    area.add_argument("--source", required=True, help="a configured data source (AREA_SOURCES)")
    area.add_argument("--max-scenes", type=int, default=5)
    area.add_argument("--wait", action="store_true", help="follow the job until it finishes")
    area.add_argument("--out", type=Path, help="save the archive here (implies --wait)")
    area.add_argument("--poll", type=float, default=1.0, help="seconds between progress updates")
    area.add_argument("--json", action="store_true", help="print the API's JSON answer")
    area.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from backend.cli import main as cli  # main registers this module: imported here, not at the top

    archive.check_out(args.out)
    body = {
        "bboxes": args.bbox,
        "date": args.date,
        "temporal_tolerance": args.tolerance,
        "data_source": args.source,
        "max_scenes": args.max_scenes,
    }
    with cli._client(args) as client:
        job = _check(client.post("/api/area-jobs", json=body)).json()
        if args.json and not (args.wait or args.out):
            cli._print_json(job)
            return 0
        start, end = job["datetime_window"]
        print(f"job {job['job_id']}: {args.source}, {start} .. {end}; user hash {job['user_hash']}")
        return archive.follow_to_archive(client, args, job, follow)


def stage(status: dict[str, Any]) -> str:
    """One line of where the job stands: its state and the counters of that stage."""
    area = status.get("area") or {}
    state = str(status["state"])
    if state == "fetching" and area.get("scenes_found") is not None:
        read = area.get("bytes_read")
        size = f", {human_bytes(read)} read" if read is not None else ""
        return f"fetching: {area.get('scenes_fetched', 0)} of {area['scenes_found']} scenes{size}"
    if state == "processing":
        return f"processing: {status['done'] + status['failed']} of {status['total']} windows"
    return state


def follow(client: httpx.Client, job_id: str, poll: float) -> dict[str, Any]:
    """Long-poll the status until the job ends, a line on stderr for each new stage; report the outcome."""
    last, wait = "", 0.0  # the first answer at once, then long polls
    while True:
        status: dict[str, Any] = _check(client.get(f"/api/status/{job_id}", params={"wait": wait})).json()
        wait = poll
        line = stage(status)
        if line != last:
            print(line, file=sys.stderr)
            last = line
        if status["state"] in ENDED:
            break
    for error in status["errors"]:
        print(f"failed {error['name']}: {error['error']}", file=sys.stderr)
    area = status.get("area") or {}
    if area.get("scenes_found") is not None:
        read = area.get("bytes_read")
        size = f" ({human_bytes(read)} downloaded)" if read is not None else ""
        found, failed = area["scenes_found"], area["scenes_failed"]
        land = f", {area['scenes_on_land']} on land (not read)" if area.get("scenes_on_land") else ""
        print(f"{found} scenes found, {area['scenes_fetched'] - failed} read{size}, {failed} failed{land}")
    reason = area.get("reason")
    if reason:
        print(f"job {job_id} failed: {reason}")
    else:
        print(
            f"job {job_id} {status['state']}: {status['done']} of {status['total']} windows segmented, "
            f"{status['failed']} failed"
        )
    return status
