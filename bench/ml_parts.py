"""Where the ML service's time goes beyond the model: `python -m bench.ml_parts [-n N] [--rounds R]`.

bench.pipeline says how far the whole stack is from the bare model; this says which part of the ML service
costs what, in-process and without HTTP, on the same synthetic tiles:

- each piece of a batch answer alone, one thread, CPU ms per image (best of `--rounds`): decoding (PNG and
  the radiometric conversion), the mask, its PNG, the overlay PNG, and the slicks (vectorising, GeoJSON);
- the service's batch answer (ml.service.batch, 32 images a call as a worker sends them) against the bare
  model on the same thread budget, with and without the slicks and the overlay: wall ms per image and
  the ratio bare/batch, alternated, medians of the rounds.

Each piece runs while nothing else does, so the one-thread figures add up to less than the batch's extra
time: beside the model's two threads, the answer's own work also slows the model (two cores, three busy
threads). The last lines are the ratios.
"""

from __future__ import annotations

import argparse
import io
import statistics
import threading
import time
import zipfile
from collections.abc import Callable

import rasterio
from fastapi import UploadFile

from bench.synthetic import synthetic_pngs
from common.wire import RESULTS_ENTRY, BatchResult
from ml.geo.products import geo_products
from ml.inference import Segmenter, to_mask, without_nodata
from ml.outputs import encode_mask_png, encode_overlay_png
from ml.service.batch import batch_answer, decode_upload
from ml.service.config import settings

IMAGES_PER_CALL = 32  # the worker's IMAGES_PER_TASK default


def cpu_ms_per_image(fn: Callable[[], object], count: int, rounds: int) -> float:
    """Best of `rounds` calls of `fn`, in process CPU ms per image (the minimum: the least disturbed)."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return 1000 * best / count


def answered(answer: bytes) -> BatchResult:
    """The results.json of a batch answer (read back: checking it costs ~0.01 ms an image)."""
    with zipfile.ZipFile(io.BytesIO(answer)) as archive:
        return BatchResult.model_validate_json(archive.read(RESULTS_ENTRY))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--count", type=int, default=200, help="256x256 synthetic tiles (default 200)")
    p.add_argument("--rounds", type=int, default=3, help="repetitions of each measure (default 3)")
    args = p.parse_args(argv)
    images = synthetic_pngs(args.count, 256)
    n = len(images)
    segmenter = Segmenter(
        settings.MODEL_PATH,
        settings.THREADS,
        settings.TILE_SIZE,
        settings.TILE_OVERLAP,
        settings.BATCH_SIZE,
        settings.ALLOW_SPINNING,
        settings.runners,
    )
    try:
        decoded = [decode_upload(data, settings) for _, data in images]
        probs = list(segmenter.probabilities_many(d.image.gray for d in decoded))
        threshold = segmenter.info.threshold
        masks = [
            without_nodata(to_mask(pr, threshold), d.image.valid)
            for pr, d in zip(probs, decoded, strict=True)
        ]
        rules = settings.slick_rules
        pieces: dict[str, Callable[[], object]] = {
            "decode (PNG + conversion)": lambda: [decode_upload(data, settings) for _, data in images],
            "mask": lambda: [
                without_nodata(to_mask(pr, threshold), d.image.valid)
                for pr, d in zip(probs, decoded, strict=True)
            ],
            "mask PNG": lambda: [encode_mask_png(m) for m in masks],
            "overlay PNG": lambda: [
                encode_overlay_png(d.image.gray, m) for d, m in zip(decoded, masks, strict=True)
            ],
            "slicks (vectorise + GeoJSON)": lambda: [
                geo_products(name, d, m, pr, rules)
                for (name, _), d, m, pr in zip(images, decoded, masks, probs, strict=True)
            ],
        }
        with rasterio.Env():  # as batch_answer runs them
            for label, fn in pieces.items():
                print(f"one thread, cpu ms/image, {label}: {cpu_ms_per_image(fn, n, args.rounds):.3f}")

        def bare() -> None:
            for _ in segmenter.probabilities_many(d.image.gray for d in decoded):
                pass

        def batch(overlay: bool, geo: bool) -> Callable[[], None]:
            def run() -> None:
                slots = threading.BoundedSemaphore(1)
                for i in range(0, n, IMAGES_PER_CALL):
                    files = [
                        UploadFile(io.BytesIO(data), filename=name)
                        for name, data in images[i : i + IMAGES_PER_CALL]
                    ]
                    answer = batch_answer(files, segmenter, settings, slots, overlay=overlay, geo=geo)
                    failed = [item for item in answered(answer).images if item.status != "ok"]
                    if failed:  # a failure path would be timed instead of the work
                        raise RuntimeError(f"batch answer items failed: {failed[:3]}")

            return run

        variants = {
            "bare model": bare,
            "batch answer (overlay + slicks, as the worker asks)": batch(True, True),
            "batch answer without slicks": batch(True, False),
            "batch answer, masks only": batch(False, False),
        }
        bare()  # warm-up: ORT's first runs
        walls: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(args.rounds):
            for label, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                walls[label].append(1000 * (time.perf_counter() - t0) / n)
    finally:
        segmenter.close()
    medians = {label: statistics.median(ms) for label, ms in walls.items()}
    for label, ms in medians.items():
        print(f"wall ms/image, {label}: {ms:.2f} (rounds {', '.join(f'{m:.2f}' for m in walls[label])})")
    for label, ms in list(medians.items())[1:]:
        print(f"ratio bare model/{label}: {medians['bare model'] / ms:.3f}")


if __name__ == "__main__":
    main()
