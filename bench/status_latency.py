"""Latency of GET /api/status/{job_id} under concurrent pollers: `python -m bench.status_latency [options]`.

Starts the stack with the `.env` defaults (or `--api URL`), uploads a job of synthetic tiles so the worker and
the ML service are busy, then runs `--pollers` asyncio tasks that each GET the job's status every
`--interval` seconds (a web page polls like this) for `--seconds`, and prints p50/p99/max latency and the
request rate. Target: p99 under 50 ms with 50 pollers while the job runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import urllib.parse
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.api_client import upload_zip
from bench.harness import BenchStack, cpu_seconds
from bench.synthetic import synthetic_pngs, write_zip


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One HTTP/1.1 keep-alive GET on an open connection; returns the status code (body read and dropped)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def poller(
    api: urllib.parse.SplitResult, path: str, until: float, interval: float, out: list[float]
) -> int:
    """GET `path` every `interval` s until `until` on its own connection, appending latencies (s) to `out`.

    A bare asyncio-streams client: httpx's AsyncClient with 50 connections added hundreds of ms of tail
    latency of its own, which is not the API's.
    """
    reader, writer = await asyncio.open_connection(api.hostname, api.port)
    request = f"GET {path} HTTP/1.1\r\nHost: {api.netloc}\r\n\r\n".encode()
    errors = 0
    try:
        while (start := time.perf_counter()) < until:
            status = await get(reader, writer, request)
            out.append(time.perf_counter() - start)
            errors += status != 200
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - start)))
    finally:
        writer.close()
    return errors


async def measure(
    api_url: str, job_id: str, pollers: int, interval: float, seconds: float
) -> tuple[list[float], int]:
    api, path = urllib.parse.urlsplit(api_url), f"/api/status/{job_id}"
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    tasks = []
    for _ in range(pollers):  # started one by one over an interval, as independent pages would
        tasks.append(asyncio.create_task(poller(api, path, until, interval, latencies)))
        await asyncio.sleep(interval / pollers)
    errors = await asyncio.gather(*tasks)
    async with httpx.AsyncClient(base_url=api_url) as client:
        state = (await client.get(path)).json()
    print(f"job during the measurement: {state['state']}, {state['done']}/{state['total']} done at the end")
    return latencies, sum(errors)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 10) - 1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pollers", type=int, default=50)
    p.add_argument("--interval", type=float, default=0.25, help="seconds between one poller's requests")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to poll")
    p.add_argument(
        "--images",
        type=int,
        default=2500,
        help="tiles in the job that keeps the stack busy (it must outlast --seconds)",
    )
    p.add_argument("--api", metavar="URL", help="use a running stack's API instead of starting one")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp, ExitStack() as stack_ctx:
        workdir = Path(tmp)
        stack = None if args.api else stack_ctx.enter_context(BenchStack(workdir / "stack"))
        api_url: str = args.api if stack is None else stack.api_url
        write_zip(workdir / "job.zip", synthetic_pngs(args.images, 256))
        with httpx.Client(base_url=api_url, timeout=120) as client:
            job = upload_zip(client, workdir / "job.zip")
        run = measure(api_url, job.job_id, args.pollers, args.interval, args.seconds)
        cpu0 = cpu_seconds(stack.pid("api")) if stack else 0.0
        latencies, errors = asyncio.run(run)
        api_cpu = cpu_seconds(stack.pid("api")) - cpu0 if stack else None
    ms = sorted(1000 * s for s in latencies)
    print(f"requests: {len(ms)} in {args.seconds:.0f} s ({len(ms) / args.seconds:.0f}/s), non-200: {errors}")
    print(
        f"GET /api/status latency, {args.pollers} pollers: p50 {percentile(ms, 50):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms, max {ms[-1]:.1f} ms (target p99 < 50 ms)"
    )

    if api_cpu is not None:
        per_request = 1000 * api_cpu / max(1, len(ms))
        print(f"api cpu per status request: {per_request:.2f} ms ({1000 / per_request:.0f}/s per core)")


if __name__ == "__main__":
    main()
