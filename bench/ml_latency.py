"""Latency of the segmentation model: `python -m bench.ml_latency [--service URL]`.

Prints one labelled figure per line: ms per 256x256 tile at batch 1 on one runner (median), tiles/s when a
large scene goes through the service's Segmenter (tiling, batching and blending included, the ML service's
settings), and, with --service, the same two through HTTP (upload, decode, PNG encoding and transfer
included). Inputs are synthetic speckled sea.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from ml.inference import Segmenter, tile_positions
from ml.service.config import settings


def speckled_sea(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 SAR-like clutter: grey ~110 under gamma-distributed multiplicative speckle."""
    rng = np.random.default_rng(seed)
    return np.clip(110.0 * rng.gamma(4.0, 0.25, size=(height, width)), 0, 255).astype(np.uint8)


def timed(fn: Callable[[], object], runs: int, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of each of `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def count_tiles(height: int, width: int, segmenter: Segmenter) -> int:
    h, w = max(height, segmenter.tile_size), max(width, segmenter.tile_size)
    return sum(1 for _ in tile_positions(h, w, segmenter.tile_size, segmenter.overlap))


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", type=Path, default=settings.MODEL_PATH)
    p.add_argument("--threads", type=int, default=settings.THREADS, help="intra-op threads in all")
    p.add_argument("--runners", type=int, default=settings.runners, help="model runs at once")
    p.add_argument("--batch-size", type=int, default=settings.BATCH_SIZE, help="tiles per model run")
    p.add_argument(
        "--views", type=int, choices=[1, 2, 4], default=settings.VIEWS, help="mirror views per tile"
    )
    p.add_argument("--runs", type=int, default=50, help="timed runs of the single tile")
    p.add_argument("--large", type=int, default=4000, help="side of the large square scene")
    p.add_argument("--service", metavar="URL", help="also time POST /segment of a running ML service")
    args = p.parse_args(argv)

    segmenter = Segmenter(
        args.model, args.threads, batch_size=args.batch_size, runners=args.runners, views=args.views
    )
    runners = segmenter.runners
    tile = speckled_sea(segmenter.tile_size, segmenter.tile_size)
    batch = (tile.astype(np.float32) / 255)[None, None]
    ms = statistics.median(timed(lambda: segmenter.predict(batch), args.runs)) * 1000
    print(
        f"onnx model, 1 tile of {segmenter.tile_size}x{segmenter.tile_size}, batch 1, "
        f"{runners.threads} threads, {runners.views} view(s): median {ms:.1f} ms/tile over {args.runs} runs"
    )

    large = speckled_sea(args.large, args.large, seed=1)
    tiles = count_tiles(args.large, args.large, segmenter)
    seconds = timed(lambda: segmenter.segment(large), runs=1, warmup=0)[0]
    print(
        f"segmenter, {args.large}x{args.large} scene ({tiles} tiles, overlap {segmenter.overlap}, "
        f"batch {args.batch_size}, {runners.count} runners of {runners.threads} threads): "
        f"{seconds:.2f} s, {tiles / seconds:.1f} tiles/s"
    )

    if args.service:
        with httpx.Client(base_url=args.service.rstrip("/"), timeout=600) as client:
            files = {"file": ("tile.png", png_bytes(tile), "image/png")}

            def post_tile() -> None:
                client.post("/segment", files=files).raise_for_status()

            ms = statistics.median(timed(post_tile, args.runs)) * 1000
            print(
                f"http POST /segment, 1 tile of {segmenter.tile_size}x{segmenter.tile_size}: "
                f"median {ms:.1f} ms/request over {args.runs} runs"
            )
            body = png_bytes(large)

            def post_large() -> None:
                client.post("/segment", files={"file": ("large.png", body, "image/png")}).raise_for_status()

            seconds = timed(post_large, runs=1, warmup=0)[0]
            print(
                f"http POST /segment, {args.large}x{args.large} PNG ({len(body) / 1e6:.1f} MB): "
                f"{seconds:.2f} s, {tiles / seconds:.1f} tiles/s"
            )


if __name__ == "__main__":
    main()
