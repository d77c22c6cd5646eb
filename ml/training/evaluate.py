"""Score the ONNX model (or a running ML service) on a folder of image/mask pairs; prints one JSON line.

    python -m ml.training.evaluate --images DIR --masks DIR [--split val] [--model PATH] [--threads N]
        [--service URL]

Protocol (as in training's validation and the CBD-Net paper): confusion counts are summed over all pixels of
all tiles, oil is the positive class, mIoU is the mean of the oil and background IoUs. Images go through the
same Segmenter as the service, so any size works; masks are thresholded at 128 by ml.training.data.load_mask.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from pydantic import BaseModel

from ml.imaging import decode_image
from ml.inference import DEFAULT_MODEL_PATH, Segmenter, without_nodata
from ml.training.data import find_pairs, load_mask, split_by_blocks


@dataclass
class Confusion:
    """Pixel counts with oil as the positive class."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        """Accumulate one boolean prediction/truth pair of equal shape."""
        if pred.shape != truth.shape:
            raise ValueError(f"prediction {pred.shape} and mask {truth.shape} differ in shape")
        pred, truth = pred.astype(bool), truth.astype(bool)
        tp = int(np.count_nonzero(pred & truth))
        fp = int(np.count_nonzero(pred)) - tp
        fn = int(np.count_nonzero(truth)) - tp
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.tn += pred.size - tp - fp - fn


class EvalReport(BaseModel):
    """The one JSON line the CLI prints."""

    tiles: int
    oil_iou: float
    background_iou: float
    miou: float
    f1: float
    precision: float
    recall: float


def _ratio(num: int, den: int) -> float:
    # An empty denominator scores 0, as in ml.training.validation.validate, so both report the same figures.
    return num / den if den else 0.0


def scores(c: Confusion, tiles: int) -> EvalReport:
    """IoUs, F1, precision and recall from summed confusion counts."""
    oil = _ratio(c.tp, c.tp + c.fp + c.fn)
    background = _ratio(c.tn, c.tn + c.fp + c.fn)
    precision = _ratio(c.tp, c.tp + c.fp)
    recall = _ratio(c.tp, c.tp + c.fn)
    f1 = _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn)
    return EvalReport(
        tiles=tiles,
        oil_iou=round(oil, 4),
        background_iou=round(background, 4),
        miou=round((oil + background) / 2, 4),
        f1=round(f1, 4),
        precision=round(precision, 4),
        recall=round(recall, 4),
    )


Predictor = Callable[[Path], np.ndarray]  # image file -> boolean HxW oil prediction


def local_predictor(model: Path, threads: int, views: int = 1) -> Predictor:
    """Run the ONNX model in-process, decoding and converting each file exactly as the service does."""
    segmenter = Segmenter(model, threads=threads, views=views)

    def predict(path: Path) -> np.ndarray:
        image = decode_image(path.read_bytes())
        return without_nodata(segmenter.segment(image.gray), image.valid) >= 128

    return predict


def service_predictor(url: str, client: httpx.Client | None = None) -> Predictor:
    """Send the original file bytes to a running ML service's POST /segment."""
    client = client or httpx.Client(base_url=url.rstrip("/"), timeout=600.0)

    def predict(path: Path) -> np.ndarray:
        response = client.post("/segment", files={"file": (path.name, path.read_bytes())})
        if response.status_code != 200:
            raise RuntimeError(f"{path.name}: service answered {response.status_code}: {response.text}")
        with Image.open(io.BytesIO(response.content)) as mask:
            return np.asarray(mask.convert("L")) >= 128

    return predict


def evaluate(pairs: Iterable[tuple[str, Path, Path]], predict: Predictor) -> EvalReport:
    """Sum confusion counts of every pair and score them."""
    confusion = Confusion()
    tiles = 0
    for _stem, image, mask in pairs:
        confusion.add(predict(image), load_mask(mask))
        tiles += 1
    return scores(confusion, tiles)


def select_pairs(images: Path, masks: Path, split: str) -> list[tuple[str, Path, Path]]:
    """All pairs, or only the validation blocks that training held out."""
    pairs = find_pairs(images, masks)
    if split == "val":
        _train, val = split_by_blocks([stem for stem, _, _ in pairs])
        pairs = [pairs[i] for i in val]
    return pairs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--masks", type=Path, required=True)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--views", type=int, choices=[1, 2, 4], default=1, help="mirror views averaged per tile")
    p.add_argument("--split", choices=["all", "val"], default="all")
    p.add_argument("--service", metavar="URL", help="score a running ML service instead of the local model")
    args = p.parse_args(argv)

    pairs = select_pairs(args.images, args.masks, args.split)
    if not pairs:
        sys.exit(f"no image/mask pairs with a common stem in {args.images} and {args.masks}")
    predict = (
        service_predictor(args.service)
        if args.service
        else local_predictor(args.model, args.threads, args.views)
    )
    print(evaluate(pairs, predict).model_dump_json())


if __name__ == "__main__":
    main()
