"""Windowed reads of area jobs over HTTP: `python -m bench.area_reads [--size 4096]`.

Writes two synthetic scenes like the catalogues' (a projected float32 COG like an RTC, a GCP-georeferenced
uint16 COG like a GRD; `--size` pixels square at 10 m, DEFLATE, 512-pixel tiles), serves them from a
Starlette StaticFiles server on loopback (range requests), and reads square windows of growing side with
backend.sources.window.read_windows, as the fetching stage does. Prints per window the bytes GDAL
downloaded (its own count, as the job's `bytes_read` reports it) and those the server sent (the two must
agree), the requests, the share of the file and the time, against downloading the whole file once. What it
shows: the bytes read grow with the tiles under the window, not with the scene.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import rasterio
import uvicorn
from rasterio.control import GroundControlPoint
from rasterio.errors import NotGeoreferencedWarning
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.sources import netstats
from backend.sources.window import WindowData, gdal_options, read_windows

ORIGIN_X, ORIGIN_Y = 549_600.0, 2_986_540.0  # UTM 39N, ~27.0 N 51.5 E
LON0, LAT0, STEP = 51.2, 27.2, 1e-4


def write_scenes(folder: Path, size: int) -> None:
    rng = np.random.default_rng(0)
    power = (rng.gamma(4.0, 0.0125, (size, size))).astype(np.float32)
    profile = {
        "driver": "COG",
        "width": size,
        "height": size,
        "count": 1,
        "BLOCKSIZE": 512,
        "COMPRESS": "DEFLATE",
    }
    transform = rasterio.Affine(10.0, 0.0, ORIGIN_X, 0.0, -10.0, ORIGIN_Y)
    with rasterio.open(
        folder / "rtc.tif", "w", dtype="float32", crs="EPSG:32639", transform=transform, **profile
    ) as dst:
        dst.write(power, 1)
    gcps = [
        GroundControlPoint(row=r, col=c, x=LON0 + c * STEP, y=LAT0 - r * STEP, z=0.0)
        for r in (0, size // 2, size)
        for c in (0, size // 2, size)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(folder / "grd.tif", "w", dtype="uint16", **profile) as dst:
            dst.gcps = (gcps, rasterio.crs.CRS.from_epsg(4326))
            dst.write(np.sqrt(power * 1e5).astype(np.uint16), 1)


class CountingApp:
    """The file server, counting the bytes of the bodies it sends (the other side's view of GDAL's count)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.sent, self.requests = app, 0, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.sent += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                self.requests += 1
            await send(message)

        await self.app(scope, receive, counting)


def serve(folder: Path) -> tuple[str, uvicorn.Server, CountingApp]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    app = CountingApp(Starlette(routes=[Mount("/files", StaticFiles(directory=folder))]))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}/files"
    while not server.started:
        time.sleep(0.05)
    return url, server, app


def bbox_of(name: str, side_px: int, size: int) -> tuple[float, float, float, float]:
    """A square lon/lat box of about `side_px` 10 m pixels at the scene's centre."""
    half = side_px * STEP / 2
    if name == "grd.tif":
        lon, lat = LON0 + size * STEP / 2, LAT0 - size * STEP / 2
    else:
        lon, lat = 51.5 + size * 5e-5, 26.99 - size * 4.5e-5
    return (lon - half, lat - half, lon + half, lat + half)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=4096, help="scene side in pixels")
    p.add_argument("--sides", type=int, nargs="+", default=[100, 300, 1000, 2000], help="window sides (px)")
    args = p.parse_args(argv)
    options = gdal_options(retries=0, retry_delay=0, timeout=30, extra={})
    with tempfile.TemporaryDirectory(prefix="bench-area-") as tmp:
        folder = Path(tmp)
        write_scenes(folder, args.size)
        url, server, counter = serve(folder)
        try:
            print(
                f"scenes {args.size} x {args.size} px; window in 10 m pixels; bytes by GDAL and by the server"
            )
            columns = ("GDAL count", "served", "requests", "of file", "time")
            print(
                f"{'scene':8} {'window':>13} "
                + " ".join(f"{c:>12}" if i < 2 else f"{c:>8}" for i, c in enumerate(columns))
            )
            for name in ("rtc.tif", "grd.tif"):
                size = (folder / name).stat().st_size
                started = time.perf_counter()
                whole = len(httpx.get(f"{url}/{name}", timeout=60).content)
                seconds = time.perf_counter() - started
                print(f"{name:8} {'whole file':>13} {'':>12} {whole:>12,} {1:>8} {1:>8.1%} {seconds:>7.2f}s")
                for side in args.sides:
                    netstats.clear_cache()
                    netstats.reset()
                    counter.sent = counter.requests = 0
                    started = time.perf_counter()
                    [window] = read_windows(
                        f"{url}/{name}", [bbox_of(name, side, args.size)], max_pixels=10**9, options=options
                    )
                    seconds = time.perf_counter() - started
                    read = netstats.downloaded_bytes() or 0
                    shape = f"{window.width}x{window.height}" if isinstance(window, WindowData) else window
                    served, requests = counter.sent, counter.requests
                    print(
                        f"{name:8} {shape:>13} {read:>12,} {served:>12,} {requests:>8} {served / size:>8.1%} "
                        f"{seconds:>7.2f}s"
                    )
        finally:
            server.should_exit = True


if __name__ == "__main__":
    main()
