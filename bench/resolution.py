"""What a coarser processing resolution costs in quality: the model on decimated real tiles (issue 17).

    python -m bench.resolution [--data ../shared/data/sos-sentinel1-train] [--factors 1 2 4]

The validation split of the SOS training tiles (ml.training.evaluate's, the blocks training held out) is cut
into mosaics of f x f consecutive 256 x 256 tiles (neighbouring ids are mostly views of one scene), each
mosaic is decimated by f (GDAL-like `average` of f x f pixels, or `nearest`: one pixel of f x f), converted
and segmented as the scene path does (ml.radiometry's stretch of the decimated image, the service's
Segmenter), and its mask upsampled back by f. Printed per factor and resampling: oil IoU against the ground
truth, and against the model's own full-resolution mask of the same mosaic (how much of the full-resolution
answer is kept), with summed confusion counts (ml.training.evaluate's protocol), and the model tiles run.
The tiles' own pixel is taken as "full resolution": f = 2 and 4 are 20 and 40 m for a 10 m scene.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ml.inference import Segmenter
from ml.radiometry import convert
from ml.training.data import DEFAULT_DATA, load_image, load_mask
from ml.training.evaluate import Confusion, select_pairs

TILE = 256


def decimate(image: np.ndarray, factor: int, resampling: str) -> np.ndarray:
    if factor == 1:
        return image
    if resampling == "nearest":
        return image[factor // 2 :: factor, factor // 2 :: factor]
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor).astype(np.float32)
    averaged: np.ndarray = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)
    return averaged


def predict(segmenter: Segmenter, mosaic: np.ndarray, factor: int, resampling: str) -> np.ndarray:
    gray = convert(decimate(mosaic, factor, resampling)).gray
    mask: np.ndarray = segmenter.segment(gray) >= 128
    return np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)


def mosaics(pairs: list[tuple[str, Path, Path]], factor: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, truth) mosaics of factor x factor consecutive tiles (a remainder is left out)."""
    out = []
    per = factor * factor
    for start in range(0, len(pairs) - per + 1, per):
        group = pairs[start : start + per]
        images = [load_image(image) for _, image, _ in group]
        truths = [load_mask(mask) for _, _, mask in group]
        if any(im.shape != (TILE, TILE) for im in images):
            continue
        rows = [np.hstack(images[r * factor : (r + 1) * factor]) for r in range(factor)]
        truth_rows = [np.hstack(truths[r * factor : (r + 1) * factor]) for r in range(factor)]
        out.append((np.vstack(rows), np.vstack(truth_rows) > 0))
    return out


def iou(c: Confusion) -> float:
    return c.tp / max(1, c.tp + c.fp + c.fn)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    pairs = select_pairs(args.data / "images", args.data / "masks", "val")
    segmenter = Segmenter(threads=args.threads)
    print(f"validation tiles: {len(pairs)}")
    for factor in (f for f in args.factors if f > 1):
        data = mosaics(pairs, factor)
        full = [predict(segmenter, image, 1, "average") for image, _ in data]
        base = Confusion()
        for pred, (_, truth) in zip(full, data, strict=True):
            base.add(pred, truth)
        print(
            json.dumps(
                {"factor": factor, "resampling": "none (full resolution)", "oil_iou": round(iou(base), 4)}
            )
        )
        for resampling in ("average", "nearest"):
            vs_truth, vs_full = Confusion(), Confusion()
            started = time.perf_counter()
            for (image, truth), reference in zip(data, full, strict=True):
                pred = predict(segmenter, image, factor, resampling)
                vs_truth.add(pred, truth)
                vs_full.add(pred, reference)
            line = {
                "factor": factor,
                "resampling": resampling,
                "mosaics": len(data),
                "oil_iou": round(iou(vs_truth), 4),
                "oil_iou_vs_full_resolution": round(iou(vs_full), 4),
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
