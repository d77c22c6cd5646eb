"""Memory and speed of a large upload through POST /api/upload: `python -m bench.upload_memory [--mb 1024]`.

Builds a zip of image-named entries (PNG signature + random bytes, stored: the API checks signatures, not
pixels) in a temporary folder, starts redis-server and the API (no worker: the job just stays queued), and
streams the zip over loopback while sampling the API process's RSS every few milliseconds. Prints the
receive throughput (until the last body byte is sent: the server writes it to disk as it comes), the total
time until the 202 (receive + zip scan + queueing), and the API's RSS growth over its idle level.
Targets: RSS growth < 64 MB, receive >= 100 MB/s.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from bench.harness import BenchStack, cpu_seconds, rss_bytes
from bench.synthetic import png_bytes, sar_scene

MB = 1024 * 1024
ENTRY_MB = 16
CHUNK = 1 * MB
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BOUNDARY = "bench-upload-boundary"


def write_big_zip(dest: Path, total_mb: int) -> int:
    """Stored entries of ENTRY_MB each, written chunk by chunk (the bench itself stays small)."""
    block = np.random.default_rng(0).bytes(CHUNK)  # random-ish: one random block, a counter per chunk
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for i in range(max(1, total_mb // ENTRY_MB)):
            with zf.open(f"scenes/scene_{i:04d}.png", "w", force_zip64=True) as entry:
                entry.write(PNG_SIGNATURE)
                for j in range(ENTRY_MB):
                    entry.write(struct.pack(">II", i, j) + block[8:])
    return dest.stat().st_size


class Body:
    """A multipart/form-data body streamed from a file; `sent_at` is when its last byte was handed over and
    `sent_cpu` the API's CPU seconds then."""

    def __init__(self, path: Path, api_pid: int) -> None:
        self.path = path
        self.api_pid = api_pid
        self.head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.length = len(self.head) + path.stat().st_size + len(self.tail)
        self.sent_at = self.sent_cpu = 0.0

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        with self.path.open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
        yield self.tail
        self.sent_at, self.sent_cpu = time.perf_counter(), cpu_seconds(self.api_pid)


class RssSampler(threading.Thread):
    """Peak RSS of one process while running."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = rss_bytes(pid)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def stop(self) -> int:
        self.stopping.set()
        self.join()
        return self.peak


def post(client: httpx.Client, body: Body) -> httpx.Response:
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(body.length),
    }
    return client.post("/api/upload", content=iter(body), headers=headers)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=int, default=1024, help="size of the zip in MB (default 1024)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        workdir = Path(tmp)
        big = workdir / "big.zip"
        t0 = time.perf_counter()
        size = write_big_zip(big, args.mb)
        built = time.perf_counter() - t0
        entries = size // (ENTRY_MB * MB)
        print(f"zip: {size / MB:.0f} MB, {entries} entries, {built:.1f} s to make", flush=True)
        warm = workdir / "warm.zip"
        with zipfile.ZipFile(warm, "w") as zf:
            zf.writestr("warm.png", png_bytes(sar_scene(64, 64)))
        with (
            BenchStack(workdir / "stack", names=("redis", "api")) as stack,
            httpx.Client(base_url=stack.api_url, timeout=600) as client,
        ):
            pid = stack.pid("api")
            post(client, Body(warm, pid)).raise_for_status()  # first request: lazy imports, pools
            idle = rss_bytes(pid)
            sampler = RssSampler(pid)
            sampler.start()
            body = Body(big, pid)
            start, cpu0 = time.perf_counter(), cpu_seconds(pid)
            response = post(client, body)
            done, cpu1 = time.perf_counter(), cpu_seconds(pid)
            peak = sampler.stop()
        if response.status_code != 202:
            raise SystemExit(f"upload failed: {response.status_code} {response.text[:300]}")
    receive, images = body.sent_at - start, response.json()["images"]
    growth = (peak - idle) / MB
    print(f"api rss: idle {idle / MB:.1f} MB, peak {peak / MB:.1f} MB, growth {growth:.1f} MB (target < 64)")
    print(f"receive: {receive:.2f} s, {size / MB / receive:.0f} MB/s (target >= 100)")
    print(f"total until 202 (receive + scan + queue {images} images): {done - start:.2f} s")
    receive_cpu, rest_cpu = body.sent_cpu - cpu0, cpu1 - body.sent_cpu
    rate = size / MB / max(receive_cpu, 1e-9)
    print(f"api cpu: receive {receive_cpu:.2f} s ({rate:.0f} MB/CPU-second), scan+queue {rest_cpu:.2f} s")


if __name__ == "__main__":
    main()
