"""The command line of `python -m ml.training.train`: every option, its default and why it exists."""

from __future__ import annotations

import argparse
from pathlib import Path

from ml.training.augment import LEVEL_GAIN, LEVEL_OFFSET
from ml.training.data import DEFAULT_DATA, DEFAULT_NEGATIVES
from ml.training.losses import LOSSES
from ml.training.model import ARCHITECTURES, CHANNELS


def parse_args(argv: list[str] | None = None, description: str | None = None) -> argparse.Namespace:
    """`description` is the trainer's docstring, so that `--help` still says how runs resume."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with images/ and masks/")
    p.add_argument(
        "--negatives",
        type=Path,
        default=DEFAULT_NEGATIVES,
        help="folder of oil-free chips (images/ + chips.csv); 'none' trains without them",
    )
    p.add_argument("--negatives-per-batch", type=int, default=4, help="oil-free crops added to each batch")
    p.add_argument(
        "--hard-negatives",
        type=float,
        default=0.0,
        help="share of those crops drawn in proportion to how much of their chip the starting weights mark"
        " oil (ml/training/negatives.py); the rest uniformly",
    )
    p.add_argument(
        "--synthetic-slicks",
        type=float,
        default=0.0,
        help="share of those crops given a wide dark slick, labelled oil (ml/training/synthetic.py)",
    )
    p.add_argument("--out", type=Path, default=Path("runs/slicknet"), help="checkpoint folder")
    p.add_argument("--arch", choices=ARCHITECTURES, default="slicknet")
    p.add_argument("--ema", type=float, default=0.999, help="decay of the weights' moving average (0 = off)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument(
        "--keep-epochs",
        action="store_true",
        help="also keep each epoch's scored weights as OUT/epoch-NN.pt, to choose on whole-scene checks",
    )
    p.add_argument(
        "--channels",
        type=_channels,
        default=CHANNELS,
        help="encoder widths, comma-separated (default %(default)s)",
    )
    p.add_argument(
        "--zoom",
        type=float,
        default=1.0,
        help="random zoom-in of training batches by up to this factor (1 = off), half of the batches",
    )
    p.add_argument(
        "--crop",
        type=int,
        default=0,
        help="train on random crops of this side, cut after augmentation and stretch (0 = whole tiles)",
    )
    p.add_argument(
        "--init",
        type=Path,
        help="start from these weights (an exported .onnx or a checkpoint .pt) instead of random ones",
    )
    p.add_argument(
        "--log-share",
        type=float,
        default=0.0,
        help="share of tiles rendered through the amplitude reading's log curve (augmentation)",
    )
    p.add_argument(
        "--scene-share",
        type=float,
        default=0.0,
        help="share of tiles stretched on their sea alone, as in a whole scene (dark slicks clipped)",
    )
    p.add_argument(
        "--level-share",
        type=float,
        default=0.0,
        help="share of tiles moved in grey level and contrast after the stretch, as in a whole scene",
    )
    p.add_argument(
        "--level-offset",
        type=float,
        default=LEVEL_OFFSET,
        help="largest grey-level move of --level-share's tiles, as a share of the range",
    )
    p.add_argument(
        "--level-gain",
        type=float,
        default=LEVEL_GAIN,
        help="smallest contrast factor of --level-share's tiles (a scene's stretch compresses its sea)",
    )
    p.add_argument(
        "--window-share",
        type=float,
        default=0.0,
        help="share of crops stretched again on their own, as an upload of a small window would be",
    )
    p.add_argument(
        "--loss",
        choices=sorted(LOSSES),
        default="dice",
        help="BCE plus soft Dice (default) or plus the Lovász hinge",
    )
    return p.parse_args(argv)


def _channels(value: str) -> tuple[int, ...]:
    widths = tuple(int(part) for part in value.split(","))
    if len(widths) < 2 or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"need at least two positive widths, got {value!r}")
    return widths
