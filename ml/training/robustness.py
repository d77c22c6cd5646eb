"""Oil IoU under the re-encodings real data arrives in, and false alarms on oil-free sea: a benchmark.

    python -m ml.training.robustness [--data DIR] [--negatives DIR] [--model PATH] [--limit N] [--json]
                                     [--variant NAME ...]

Every validation tile (the block-held-out split of ml.training.data) is re-encoded as another processor
would write it, saved as the file an analyst would upload (PNG, JPEG or TIFF) and sent through the service's
own decoding, conversion and tiling (ml.imaging, ml.radiometry, ml.inference). IoU counts valid pixels only
(a nodata border is neither oil found nor oil missed), summed over all tiles as in ml.training.evaluate.

The 16-bit and float variants need a physical reading of the 8-bit grey level g. Two are tabled:
`dB reading` takes g as a linear dB rendering, dB = 30 * g / 255 - 30 (what SNAP-style quicklooks do); the
`amplitude reading` takes g as linear amplitude, DN = 8 * g (what a plain 16-to-8-bit rescale does). They
bracket the renderings met in practice. The `scene stretch` variant renders the tile as a whole scene does:
the oil is a percent of a scene's pixels or less, so the scene's stretch is its sea's and a dark slick is
clipped to flat black (it is the only variant that reads the tile's truth, to find its sea).

False alarms (share of valid pixels marked oil): validation tiles without oil, oil-free windows cut from the
validation scenes (128x128, no oil pixel in them), and the held-out oil-free CSIRO chips (split by scene id;
their land, saturated white, is nodata).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin

from ml.imaging import decode_image
from ml.inference import DEFAULT_MODEL_PATH, Segmenter, without_nodata
from ml.radiometry import HIGH_PERCENTILE, LOW_PERCENTILE
from ml.training.data import (
    DEFAULT_DATA,
    DEFAULT_NEGATIVES,
    LAND_GREY,
    find_pairs,
    load_arrays,
    load_negatives,
    split_by_blocks,
    split_negatives,
)
from ml.training.evaluate import Confusion, scores

WINDOW = 128  # side of the oil-free windows cut from validation scenes
GDAL_NODATA_TAG = 42113  # the TIFF tag GDAL reads a nodata value from

Encoded = tuple[bytes, np.ndarray | None]  # the file's bytes, and the pixels it holds data for (None: all)


def _png(grey: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(grey: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _tiff(values: np.ndarray, nodata: float | None = None) -> bytes:
    buffer = io.BytesIO()
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    if nodata is not None:
        tags[GDAL_NODATA_TAG] = str(nodata)
    Image.fromarray(values).save(buffer, format="TIFF", tiffinfo=tags)
    return buffer.getvalue()


def _curve(g: np.ndarray, f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.asarray(np.clip(np.rint(f(g.astype(np.float32))), 0, 255), np.uint8)


def _db(g: np.ndarray) -> np.ndarray:
    return (g.astype(np.float32) * (30 / 255) - 30).astype(np.float32)


def _nodata_border(g: np.ndarray) -> Encoded:
    """Amplitude numbers (dB reading) with a quarter of the tile, on one side, 0 = GRD nodata."""
    amplitude = np.round(2000 * 10 ** (_db(g) / 20)).astype(np.uint16)
    valid = np.ones(g.shape, bool)
    valid[:, : g.shape[1] // 4] = False
    amplitude[~valid] = 0
    return _tiff(amplitude), valid


def _scene_stretch(g: np.ndarray, truth: np.ndarray) -> Encoded:
    """The tile as a whole scene renders it: stretched on its sea's 1st/99th percentiles, the slick clipped.

    A scene's oil is a percent of its pixels or less, so its stretch is the sea's, and a dark slick falls
    below the 1st percentile to flat black (the end-to-end scene test's slick: 60 % at 0). Tiles with under
    5 % sea are left as they are.
    """
    sea = g[~truth]
    if sea.size < 0.05 * g.size:
        return _png(g), None
    low, high = np.percentile(sea, [LOW_PERCENTILE, HIGH_PERCENTILE])
    span = max(float(high - low), 1.0)
    return _png(_curve(g, lambda x: (x - low) * (255 / span))), None


UNTOUCHED = "untouched (PNG)"
TILE_VARIANTS: dict[str, Callable[[np.ndarray], Encoded]] = {
    UNTOUCHED: lambda g: (_png(g), None),
    "gain x0.5": lambda g: (_png(_curve(g, lambda x: x * 0.5)), None),
    "gain x1.5 (clipped)": lambda g: (_png(_curve(g, lambda x: x * 1.5)), None),
    "offset +60": lambda g: (_png(_curve(g, lambda x: x + 60)), None),
    "offset -30": lambda g: (_png(_curve(g, lambda x: x - 30)), None),
    "gamma 0.5": lambda g: (_png(_curve(g, lambda x: 255 * (x / 255) ** 0.5)), None),
    "gamma 2": lambda g: (_png(_curve(g, lambda x: 255 * (x / 255) ** 2)), None),
    "contrast x0.6": lambda g: (_png(_curve(g, lambda x: (x - x.mean()) * 0.6 + x.mean())), None),
    "contrast x1.4": lambda g: (_png(_curve(g, lambda x: (x - x.mean()) * 1.4 + x.mean())), None),
    "JPEG quality 75": lambda g: (_jpeg(g, 75), None),
    "uint16 amplitude, dB reading": lambda g: (
        _tiff(np.round(2000 * 10 ** (_db(g) / 20)).astype(np.uint16)),
        None,
    ),
    "uint16 amplitude, amplitude reading": lambda g: (_tiff(g.astype(np.uint16) * 8), None),
    "float32 sigma0 dB": lambda g: (_tiff(_db(g)), None),
    "float32 sigma0 linear": lambda g: (_tiff((10 ** (_db(g) / 10)).astype(np.float32)), None),
    "float32 sigma0 linear, amplitude reading": lambda g: (
        _tiff(((g.astype(np.float32) / 255) ** 2).astype(np.float32)),
        None,
    ),
    "nodata border (uint16, 0 = nodata)": _nodata_border,
}
Variant = Callable[[np.ndarray, np.ndarray], Encoded]  # (grey levels, oil truth) -> the file


def _of_tile(encode: Callable[[np.ndarray], Encoded]) -> Variant:
    return lambda grey, _truth: encode(grey)


VARIANTS: dict[str, Variant] = {name: _of_tile(f) for name, f in TILE_VARIANTS.items()} | {
    "scene stretch (dark slick clipped)": _scene_stretch,
}


def predict_file(segmenter: Segmenter, data: bytes) -> np.ndarray:
    """Boolean oil map of one file, through the service's decoding, conversion and tiling."""
    image = decode_image(data)
    return without_nodata(segmenter.segment(image.gray), image.valid) >= 128


def variant_ious(
    segmenter: Segmenter, images: np.ndarray, masks: np.ndarray, variants: dict[str, Variant]
) -> dict[str, dict[str, float]]:
    """Oil IoU (and precision, recall) of every variant, counted on the pixels each file holds data for."""
    table: dict[str, dict[str, float]] = {}
    for name, encode in variants.items():
        confusion = Confusion()
        for grey, truth in zip(images, masks, strict=True):
            data, valid = encode(grey, truth)
            pred = predict_file(segmenter, data)
            if valid is None:
                confusion.add(pred, truth)
            else:
                confusion.add(pred[valid], truth[valid])
        report = scores(confusion, len(images))
        table[name] = {"oil_iou": report.oil_iou, "precision": report.precision, "recall": report.recall}
    return table


def false_alarm(segmenter: Segmenter, files: Sequence[Encoded]) -> float:
    """Share of the valid pixels of oil-free files that the model marks oil."""
    marked = total = 0
    for data, valid in files:
        pred = predict_file(segmenter, data)
        if valid is not None:
            pred = pred[valid]
        marked += int(np.count_nonzero(pred))
        total += pred.size
    return marked / max(1, total)


def oil_free_windows(images: np.ndarray, masks: np.ndarray, size: int = WINDOW) -> list[np.ndarray]:
    """Non-overlapping size x size windows of the scenes that hold no oil pixel at all."""
    windows = []
    for grey, truth in zip(images, masks, strict=True):
        for top in range(0, grey.shape[0] - size + 1, size):
            for left in range(0, grey.shape[1] - size + 1, size):
                if not truth[top : top + size, left : left + size].any():
                    windows.append(grey[top : top + size, left : left + size])
    return windows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--negatives", type=Path, default=DEFAULT_NEGATIVES)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--views", type=int, choices=[1, 2, 4], default=1, help="mirror views averaged per tile")
    p.add_argument("--limit", type=int, help="score only the first N validation tiles (quick looks)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument(
        "--variant",
        action="append",
        choices=list(VARIANTS),
        help="score only this variant (repeatable; the untouched tiles are always scored)",
    )
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    pairs = find_pairs(args.data / "images", args.data / "masks")
    _train, val = split_by_blocks([stem for stem, _, _ in pairs])
    images, masks = load_arrays([pairs[i] for i in val[: args.limit]])
    segmenter = Segmenter(args.model, threads=args.threads, views=args.views)
    chosen = VARIANTS if not args.variant else {k: VARIANTS[k] for k in [UNTOUCHED, *args.variant]}
    table = variant_ious(segmenter, images, masks.astype(bool), chosen)
    empty = [(_png(g), None) for g, m in zip(images, masks, strict=True) if not m.any()]
    windows = [(_png(w), None) for w in oil_free_windows(images, masks)]
    alarms = {
        f"validation tiles without oil ({len(empty)})": false_alarm(segmenter, empty),
        f"oil-free {WINDOW}x{WINDOW} windows of validation scenes ({len(windows)})": false_alarm(
            segmenter, windows
        ),
    }
    if args.negatives.is_dir():
        chips, land, scenes = load_negatives(args.negatives)
        _tr, held = split_negatives(scenes)
        files = [
            (_tiff(chips[i], nodata=LAND_GREY), ~land[i]) if land[i].any() else (_png(chips[i]), None)
            for i in held[: args.limit]
        ]
        alarms[f"held-out oil-free CSIRO chips ({len(files)})"] = false_alarm(segmenter, files)
    segmenter.close()
    untouched = table[UNTOUCHED]["oil_iou"]
    result = {
        "model": segmenter.info.version,
        "tiles": len(images),
        "variants": table,
        "worst_drop": round(max(untouched - v["oil_iou"] for v in table.values()), 4),
        "false_alarm": {k: round(v, 5) for k, v in alarms.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"model {result['model']}, {len(images)} validation tiles, {result['seconds']} s")
    print("| variant | oil IoU | vs untouched | precision | recall |\n|---|---|---|---|---|")
    for name, v in table.items():
        print(
            f"| {name} | {v['oil_iou']:.4f} | {v['oil_iou'] - untouched:+.4f} | {v['precision']:.4f} | "
            f"{v['recall']:.4f} |"
        )
    print("\n| oil-free input | pixels marked oil |\n|---|---|")
    for name, share in alarms.items():
        print(f"| {name} | {100 * share:.2f} % |")


if __name__ == "__main__":
    main()
