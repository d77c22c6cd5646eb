"""Fair shares between owners: `python -m bench.fairness [-n 9000] [--small 5] [--rounds 1] [--fifo]`.

Two API keys on a stack of its own (AUTH_MODE=api-key, the `.env` defaults otherwise). Owner "big" uploads
one job of `-n` tiles; while it runs, owner "small" sends `--small` 1-tile jobs one after another, each timed
from its upload's first byte to the end of its job as the client sees it (the long poll's answer). The big
job is also run alone, alternately with the mixed run, `--rounds` times: its throughput (tiles per second
from its 202 to its end) alone and with the small jobs gives the price of fairness. `--fifo` runs the same
with FAIR_LANES=0, one first-come-first-served queue, the behaviour before lanes. Figures are printed one
per line, labelled; the small jobs' worst latency and the throughput change come last. On a machine shared
with other work the wall-clock throughput moves with the neighbours' load; the CPU the stack spends per
big-job tile (all its processes, the small jobs' own work included) does not, so it is printed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from backend.auth.keys import KeyStore
from bench.api_client import upload_zip, wait_job
from bench.harness import BenchStack, cpu_seconds
from bench.synthetic import synthetic_pngs, write_zip

DISTINCT_SCENES = 300  # made once and repeated under other names: the model's work is the same per tile
START_FRACTION = 0.05  # the small jobs start once the big job is this far, and stop at STOP_FRACTION
STOP_FRACTION = 0.85


def big_zip(dest: Path, count: int, size: int) -> int:
    scenes = synthetic_pngs(min(count, DISTINCT_SCENES), size)
    return write_zip(dest, ((f"tile_{i:05d}.png", scenes[i % len(scenes)][1]) for i in range(count)))


def _client(stack: BenchStack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, timeout=600, headers={"Authorization": f"Bearer {key}"})


def small_job(client: httpx.Client, zip_path: Path) -> float:
    """Seconds from the upload's first byte to the job's end, as the client sees it."""
    t0 = time.perf_counter()
    job = upload_zip(client, zip_path)
    end = wait_job(client, job.job_id, timeout=600)
    if end.state != "completed":
        raise RuntimeError(f"small job {job.job_id} {end.state}: {end.errors}")
    return end.seen_at - t0


@dataclass
class Run:
    rate: float  # the big job's tiles per second, from its 202 to its end
    cpu_ms: float  # CPU of the stack's processes per big-job tile (the small jobs' own work included)
    latencies: list[float]  # the small jobs sent meanwhile


def stack_cpu(stack: BenchStack) -> float:
    return sum(cpu_seconds(stack.pid(name)) for name in stack.NAMES)


def big_job(
    stack: BenchStack,
    big: httpx.Client,
    small: httpx.Client | None,
    zips: dict[str, Path],
    gap: float,
    count: int,
) -> Run:
    """One big job, with `count` small jobs sent one after another while it runs (none without `small`)."""
    job = upload_zip(big, zips["big"])
    accepted, cpu0 = time.perf_counter(), stack_cpu(stack)
    latencies: list[float] = []
    while small is not None:
        progress = big.get(f"/api/status/{job.job_id}").raise_for_status().json()
        processed = (progress["done"] + progress["failed"]) / job.images
        if processed >= STOP_FRACTION or progress["state"] != "processing" or len(latencies) >= count:
            break
        if processed >= START_FRACTION:
            latencies.append(small_job(small, zips["small"]))
            time.sleep(gap)
        else:
            time.sleep(0.2)
    end = wait_job(big, job.job_id, timeout=3600)
    if end.state != "completed" or end.done != job.images:
        raise RuntimeError(f"big job {job.job_id} {end.state}: {end.done} of {job.images}")
    cpu_ms = 1000 * (stack_cpu(stack) - cpu0) / job.images
    return Run(job.images / (end.seen_at - accepted), cpu_ms, latencies)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__)
    parser.add_argument("-n", type=int, default=9000, help="tiles in the big job")
    parser.add_argument("--size", type=int, default=256, help="tile size in pixels")
    parser.add_argument("--small", type=int, default=5, help="1-tile jobs sent during each mixed run")
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between two small jobs")
    parser.add_argument("--rounds", type=int, default=1, help="alone/mixed pairs of runs")
    parser.add_argument(
        "--fifo", action="store_true", help="FAIR_LANES=0: one queue, first come first served"
    )
    args = parser.parse_args(argv)

    os.environ.update(
        AUTH_MODE="api-key",
        MAX_IMAGES=str(max(args.n, 5000)),
        MAX_ZIP_ENTRIES=str(max(args.n, 10000)),
        QUOTA_IMAGES_PER_DAY=str(10 * args.n * args.rounds + 1000),
        QUOTA_MB_PER_DAY=str(10**7),
    )
    if args.fifo:
        os.environ["FAIR_LANES"] = "0"
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as tmp:
        work = Path(tmp)
        zips = {"big": work / "big.zip", "small": work / "small.zip"}
        mb = big_zip(zips["big"], args.n, args.size) / 1e6
        write_zip(zips["small"], synthetic_pngs(1, args.size))
        lanes = "off (FIFO)" if args.fifo else "on"
        print(f"big job: {args.n} tiles of {args.size}x{args.size} ({mb:.0f} MB); lanes: {lanes}")
        with BenchStack(work / "stack") as stack:
            keys = KeyStore(redis.Redis.from_url(stack.redis_url, decode_responses=True))
            with _client(stack, keys.create("big")) as big, _client(stack, keys.create("small")) as small:
                idle = [small_job(small, zips["small"]) for _ in range(3)]  # also warms the stack up
                print(f"small job on an idle stack: {statistics.median(idle):.2f} s (median of 3)")
                alone: list[Run] = []
                mixed: list[Run] = []
                for round_ in range(args.rounds):
                    alone.append(big_job(stack, big, None, zips, args.gap, 0))
                    mixed.append(big_job(stack, big, small, zips, args.gap, args.small))
                    shown = ", ".join(f"{s:.2f}" for s in mixed[-1].latencies)
                    print(
                        f"round {round_ + 1}: big job alone {alone[-1].rate:.1f} tiles/s "
                        f"({alone[-1].cpu_ms:.1f} CPU ms/tile), with small jobs {mixed[-1].rate:.1f} tiles/s "
                        f"({mixed[-1].cpu_ms:.1f} CPU ms/tile); small jobs: {shown} s"
                    )
    latencies = [s for run in mixed for s in run.latencies]
    if not latencies:
        raise SystemExit("no small job was sent: the big job ended too soon (raise -n)")
    rate = {
        name: statistics.median(r.rate for r in runs) for name, runs in (("alone", alone), ("mixed", mixed))
    }
    cpu = {
        name: statistics.median(r.cpu_ms for r in runs) for name, runs in (("alone", alone), ("mixed", mixed))
    }
    print(f"small jobs during the big one: median {statistics.median(latencies):.2f} s, n={len(latencies)}")
    print(
        f"big job throughput alone: {rate['alone']:.1f} tiles/s; with small jobs: {rate['mixed']:.1f} tiles/s"
    )
    print(f"stack CPU per big-job tile alone: {cpu['alone']:.2f} ms; with small jobs: {cpu['mixed']:.2f} ms")
    print(f"worst small job during the big one: {max(latencies):.2f} s")
    print(f"big job CPU per tile change: {100 * (cpu['mixed'] / cpu['alone'] - 1):+.1f} %")
    print(f"big job throughput change: {100 * (rate['mixed'] / rate['alone'] - 1):+.1f} %")


if __name__ == "__main__":
    main()
