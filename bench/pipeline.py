"""Throughput of the whole service against the bare model: `python -m bench.pipeline [options]`.

Everything but the model is overhead (upload, unzip, queueing, HTTP, PNG coding, zipping), so the figure that
matters is the pipeline's images/s over the bare model's images/s on the same images, with the same thread
budget: one in-process Segmenter with the service's ML_THREADS split between its ML_RUNNERS, exactly what the
ML service runs, fed with all the images as one stream. The stack is started with the `.env` defaults (or
`--api URL` uses a running one). The pipeline is timed from the first upload byte until the archive is ready;
a small job first warms it up. With `--rounds N` the bare model and the pipeline are measured N times,
alternately, and the median ratio is reported (single runs vary by about 5 % on a shared 2-core machine).
Figures are printed one per line, labelled; the ratio comes last.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from backend.core.config import settings as backend_settings
from bench.api_client import upload_zip, wait_job
from bench.harness import BenchStack, cpu_seconds
from bench.synthetic import decode_gray, folder_images, synthetic_pngs, write_zip
from ml.inference import Segmenter
from ml.service.config import settings as ml_settings

WARMUP_IMAGES = 4


def bare_model(images: list[tuple[str, bytes]]) -> tuple[float, float]:
    """(wall, CPU) seconds of the service's Segmenter on the decoded images, with the service's runners.

    One stream of all the images keeps every runner's queue full: 1-2 % faster than feeding it one image
    per call from ML_MAX_CONCURRENT threads, so this is the model at its best on this thread budget.
    """
    grays = [decode_gray(data) for _, data in images]
    segmenter = Segmenter(
        ml_settings.MODEL_PATH,
        ml_settings.THREADS,
        ml_settings.TILE_SIZE,
        ml_settings.TILE_OVERLAP,
        ml_settings.BATCH_SIZE,
        ml_settings.ALLOW_SPINNING,
        ml_settings.runners,
    )
    try:
        list(segmenter.segment_many(grays[:WARMUP_IMAGES]))
        t0, cpu0 = time.perf_counter(), _own_cpu()
        for _ in segmenter.segment_many(grays):
            pass
        return time.perf_counter() - t0, _own_cpu() - cpu0
    finally:
        segmenter.close()


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def warm_up(client: httpx.Client, workdir: Path, images: list[tuple[str, bytes]], timeout: float) -> None:
    """One small job first: worker pool imports, ORT's first runs and connection setup are not throughput."""
    warm_zip = workdir / "warmup.zip"
    write_zip(warm_zip, images[:WARMUP_IMAGES])
    wait_job(client, upload_zip(client, warm_zip).job_id, timeout)


def pipeline(
    client: httpx.Client, workdir: Path, images: list[tuple[str, bytes]], timeout: float
) -> tuple[float, float]:
    """(upload seconds, total seconds) of one job of all the images."""
    bench_zip = workdir / "bench.zip"
    write_zip(bench_zip, images)
    t0 = time.perf_counter()
    job = upload_zip(client, bench_zip)
    end = wait_job(client, job.job_id, timeout)
    if end.state != "completed" or end.done != len(images):
        raise RuntimeError(f"job ended {end.state} with {end.done}/{len(images)} done: {end.errors[:3]}")
    return job.seconds, end.seen_at - t0


def start_profilers(stack: BenchStack, out: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy on the ML service, the worker (with its pool children) and the API, in folded-stack format."""
    out.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [
        subprocess.Popen(
            [
                *(str(spy), "record", "--pid", str(stack.pid(name)), "--subprocesses", "--nonblocking"),
                *("--rate", "100", "--format", "raw", "--output", str(out / f"{name}.folded")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("ml", "worker", "api")
    ]


def stop_profilers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        proc.wait(60)


def load_images(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    if args.images:
        return folder_images(args.images, args.count)
    if args.large:
        return synthetic_pngs(args.count or 3, 4000)
    return synthetic_pngs(args.count or 200, args.size)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--count", type=int, help="images (default 200 tiles, or 3 with --large)")
    p.add_argument("--size", type=int, default=256, help="side of the synthetic tiles (default 256)")
    p.add_argument("--large", action="store_true", help="a few 4000x4000 scenes instead of tiles")
    p.add_argument("--images", type=Path, metavar="DIR", help="use the images of this folder instead")
    p.add_argument("--api", metavar="URL", help="use a running stack's API instead of starting one")
    p.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the stack's processes into DIR")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the job")
    p.add_argument("--rounds", type=int, default=1, help="measure both N times, alternately (median ratio)")
    args = p.parse_args(argv)
    if args.profile and args.api:
        p.error("--profile needs the bench's own stack (no --api)")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")

    images = load_images(args)
    sizes = {decode_gray(data).shape for _, data in images[:3]}
    print(f"images: {len(images)} ({', '.join(f'{w}x{h}' for h, w in sizes)}...)", flush=True)
    print(
        f"settings: ML_THREADS={ml_settings.THREADS} ML_RUNNERS={ml_settings.runners} "
        f"ML_MAX_CONCURRENT={ml_settings.MAX_CONCURRENT} "
        f"ML_BATCH_SIZE={ml_settings.BATCH_SIZE} WORKER_CONCURRENCY={backend_settings.WORKER_CONCURRENCY} "
        f"IMAGES_PER_TASK={backend_settings.IMAGES_PER_TASK} (nproc {os.cpu_count()})",
        flush=True,
    )
    n = len(images)
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp, ExitStack() as stack_ctx:
        workdir = Path(tmp)
        api_url = args.api
        stack = None
        if api_url is None:
            stack = stack_ctx.enter_context(BenchStack(workdir / "stack"))
            api_url = stack.api_url
        client = stack_ctx.enter_context(httpx.Client(base_url=api_url, timeout=60))
        warm_up(client, workdir, images, args.timeout)
        for round_ in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"-- round {round_}/{args.rounds}", flush=True)
            bare, bare_cpu = bare_model(images)
            print(f"bare model: {bare:.2f} s, {n / bare:.2f} images/s", flush=True)
            profile = args.profile if round_ == 1 else None
            profilers = start_profilers(stack, profile) if stack and profile else []
            cpu0 = {name: cpu_seconds(stack.pid(name)) for name in stack.NAMES} if stack else {}
            try:
                upload_s, total = pipeline(client, workdir, images, args.timeout)
            finally:
                stop_profilers(profilers)
            cpu = {name: cpu_seconds(stack.pid(name)) - cpu0[name] for name in cpu0} if stack else {}
            if cpu:
                pipeline_cpu = sum(cpu.values())
                parts = ", ".join(f"{name} {1000 * seconds / n:.1f}" for name, seconds in cpu.items())
                print(f"cpu ms/image, bare model: {1000 * bare_cpu / n:.1f}")
                print(f"cpu ms/image, pipeline: {1000 * pipeline_cpu / n:.1f} ({parts})")
                print(
                    f"cpu ratio bare model/pipeline (expected on idle cores): {bare_cpu / pipeline_cpu:.3f}"
                )
            print(f"pipeline upload (receive + scan + queue): {upload_s:.2f} s")
            print(
                f"pipeline (upload start to archive ready): {total:.2f} s, {n / total:.2f} images/s",
                flush=True,
            )
            ratios.append(bare / total)
    if args.rounds > 1:
        print(f"ratios of the rounds: {', '.join(f'{r:.3f}' for r in ratios)}")
        print(f"ratio pipeline/bare model (median of {args.rounds}): {statistics.median(ratios):.3f}")
    else:
        print(f"ratio pipeline/bare model: {ratios[0]:.3f}")


if __name__ == "__main__":
    main()
