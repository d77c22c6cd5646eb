"""One Sentinel-1 GRD-sized scene through the whole stack, in bounded memory (issue 17).

    python -m bench.scene [--height 16700] [--width 25000] [--timeout 600]

Generates a GRD-like scene in code (bench/scene_file.py: 25,000 x 16,700 uint16 amplitude, 10 m UTM, a
slanted nodata border, land where GSHHG says, a few dark slicks), writes it as a tiled, DEFLATE-compressed
BigTIFF with averaged overviews in a zip (cached under var/bench/, reused while the generator is unchanged),
starts a stack with the default settings (bench.harness), uploads the zip, waits for the archive and checks
it holds the georeferenced COG mask and the slicks. Printed: the time from the first byte of the upload to
the downloadable archive, the job's figures, the slicks found on the drawn ones and the false ones (the
drawn slicks are the scene's only oil: anything else is a false alarm an analyst would see, which no tile
figure shows; ml/models/MODEL_CARD.md round 9), then the peak resident set size (VmHWM) of every process of
the stack, the worker's pool children included, and last the line
`scene: <seconds> s, peak RSS <MB> MB (<process>)` with the largest of them. `--keep PATH` keeps the archive.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

from bench import scene_file
from bench.api_client import upload_zip, wait_job
from bench.harness import BenchStack, peak_rss_bytes, process_tree
from scripts.processes import ROOT

MB = 1024 * 1024
CACHE = ROOT / "var" / "bench"


def scene_zip(height: int, width: int) -> Path:
    """The scene's zip, generated once per size and generator version (its source's hash)."""
    version = hashlib.sha256(Path(scene_file.__file__).read_bytes()).hexdigest()[:10]
    path = CACHE / f"grd-{width}x{height}-{version}.zip"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        spec = scene_file.SceneSpec(height, width, scene_file.grd_slicks(height, width))
        partial = path.with_suffix(".partial.zip")
        scene_file.write_scene_zip(spec, partial)
        partial.rename(path)
        took = time.perf_counter() - started
        print(f"generated {path.name} ({path.stat().st_size / MB:.0f} MB) in {took:.0f} s")
    return path


def false_slicks(table: str, drawn: Sequence[scene_file.Slick], factor: float) -> list[dict[str, str]]:
    """Rows of the archive's slicks.csv whose centroid lies on none of the drawn slicks, each grown by its
    half-width (a fragment of a drawn slick is no false alarm). `factor`: scene pixels per mask pixel."""
    grown = [scene_file.Slick(s.col, s.row, s.a + s.b, 2 * s.b, s.angle) for s in drawn]
    false = []
    for row in csv.DictReader(io.StringIO(table)):
        rows = np.array([(float(row["centroid_row"]) + 0.5) * factor])
        cols = np.array([(float(row["centroid_col"]) + 0.5) * factor])
        if not any(slick.inside(rows, cols)[0] for slick in grown):
            false.append(row)
    return false


def peaks(stack: BenchStack) -> dict[str, int]:
    """Peak RSS of every process of the stack, named (worker children as worker-child-<n>)."""
    found: dict[str, int] = {}
    for name in stack.names:
        for n, pid in enumerate(process_tree(stack.pid(name))):
            found[name if n == 0 else f"{name}-child-{n}"] = peak_rss_bytes(pid)
    return found


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=int, default=16_700)
    p.add_argument("--width", type=int, default=25_000)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--keep", type=Path, help="write the job's archive here (to look at the slicks)")
    args = p.parse_args(argv)
    upload = scene_zip(args.height, args.width)
    with tempfile.TemporaryDirectory(prefix="bench-scene-") as tmp, BenchStack(Path(tmp)) as stack:
        with httpx.Client(base_url=stack.api_url, timeout=600.0) as client:
            started = time.perf_counter()
            job = upload_zip(client, upload)
            finished = wait_job(client, job.job_id, args.timeout)
            archive = client.get(f"/api/download/{job.user_hash}")
            seconds = time.perf_counter() - started
            archive.raise_for_status()
            figures = peaks(stack)
            lines = [
                line
                for name in ("ml", "worker")
                for line in stack.log_tail(name, 400).splitlines()
                if " scene " in line or "job " in line
            ]
        if finished.state != "completed" or finished.failed:
            raise SystemExit(f"job {finished.state}: {finished.errors}\n{stack.log_tail('worker')}")
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
            names = zf.namelist()
            report = json.loads(zf.read("report.json"))["images"][0]
            table = zf.read("slicks.csv").decode() if "slicks.csv" in names else ""
        if args.keep is not None:
            args.keep.write_bytes(archive.content)
        cogs = [n for n in names if n.startswith("masks/") and n.endswith(".tif")]
        slicks = [n for n in names if n.startswith("slicks/") and n.endswith(".geojson")]
        if not cogs or not slicks:
            raise SystemExit(f"archive without a COG mask or slicks: {names}")
        print("\n".join(lines))
        print(f"upload {upload.stat().st_size / MB:.0f} MB sent and scanned in {job.seconds:.1f} s")
        print(
            f"mask {report['width']}x{report['height']}, oil {report['oil_fraction']:.4f}, "
            f"slicks {(report.get('geo') or {}).get('slicks')}, archive {len(archive.content) / MB:.0f} MB"
        )
        drawn = scene_file.grd_slicks(args.height, args.width)
        false = false_slicks(table, drawn, args.width / report["width"])
        found = len(list(csv.DictReader(io.StringIO(table)))) - len(false)
        print(
            f"slicks on the {len(drawn)} drawn ones {found}, false {len(false)} "
            f"({sum(float(r['area_km2']) for r in false):.2f} km², confidence "
            f"{max((float(r['confidence']) for r in false), default=0):.2f} at most)"
        )
        for name, peak in figures.items():
            print(f"peak RSS {name}: {peak / MB:.0f} MB")
        worst = max(figures, key=figures.__getitem__)
        print(f"scene: {seconds:.1f} s, peak RSS {figures[worst] / MB:.0f} MB ({worst})")


if __name__ == "__main__":
    main()
