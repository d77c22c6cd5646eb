"""Train SlickNet on the SOS Sentinel-1 tiles: `python -m ml.train [--resume]`.

Checkpoints after every epoch (`last.pt`, plus `best.pt` on a new best validation oil IoU), so a run can span
several sittings: `--resume` continues from `last.pt` with the same schedule. Uses CUDA when available.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ml.data import find_pairs, load_arrays, split_by_blocks
from ml.model import CHANNELS, SlickNet, count_parameters

log = logging.getLogger("ml.train")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sos-sentinel1-train"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with images/ and masks/")
    p.add_argument("--out", type=Path, default=Path("runs/slicknet"), help="checkpoint folder")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
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


def zoom(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, max_factor: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Half of the batches: a random crop of 1/f of the side, scaled back up (f up to max_factor).

    Slicks come in every size; zooming in shows the model thin ones larger and costs no padding.
    """
    if max_factor <= 1.0 or torch.rand(1, generator=gen) < 0.5:
        return x, y
    size = x.shape[-1]
    factor = 1.0 + float(torch.rand(1, generator=gen)) * (max_factor - 1.0)
    crop = max(8, round(size / factor))
    top = int(torch.randint(0, size - crop + 1, (1,), generator=gen))
    left = int(torch.randint(0, size - crop + 1, (1,), generator=gen))
    x = x[..., top : top + crop, left : left + crop]
    y = y[..., top : top + crop, left : left + crop]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    y = (F.interpolate(y, size=(size, size), mode="bilinear", align_corners=False) >= 0.5).float()
    return x, y


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Dihedral flips plus radiometric jitter (gain, gamma, speckle); masks only follow the geometry."""
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x, y = torch.rot90(x, k, (2, 3)), torch.rot90(y, k, (2, 3))
    if torch.rand(1, generator=gen) < 0.5:
        x, y = x.flip(3), y.flip(3)
    n = x.shape[0]
    shape = (n, 1, 1, 1)
    gain = torch.empty(shape).uniform_(0.8, 1.2, generator=gen).to(x.device)
    gamma = torch.exp(torch.empty(shape).uniform_(-0.3, 0.3, generator=gen)).to(x.device)
    x = (x.clamp_min(1e-4) ** gamma) * gain
    speckle = torch.empty(shape).uniform_(0.0, 0.15, generator=gen).to(x.device)
    noise = torch.randn(x.shape, generator=gen).to(x.device)
    x = x * (1 + speckle * noise)
    return x.clamp(0, 1), y


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    dice = 1 - (2 * inter + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovász hinge (Berman et al., CVPR 2018), per image then averaged: a convex surrogate of 1 - IoU.

    Dice and BCE reward pixels; this ranks each image's pixel errors and weights them by how much each
    would change that image's IoU, which is the figure the model is judged by.
    """
    losses = []
    for logit, truth in zip(logits.flatten(1), target.flatten(1), strict=True):
        signs = 2 * truth - 1
        errors = 1 - logit * signs
        errors_sorted, order = torch.sort(errors, descending=True)
        truth_sorted = truth[order]
        positives = truth_sorted.sum()
        intersection = positives - truth_sorted.cumsum(0)
        union = positives + (1 - truth_sorted).cumsum(0)
        jaccard = 1 - intersection / union
        grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(torch.dot(F.relu(errors_sorted), grad))
    return torch.stack(losses).mean()


def bce_lovasz_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target) + lovasz_hinge(logits, target)


LOSSES = {"dice": dice_bce_loss, "lovasz": bce_lovasz_loss}


def lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def validate(
    model: SlickNet, images: np.ndarray, masks: np.ndarray, device: torch.device
) -> dict[str, float]:
    """Confusion counts summed over all pixels of all tiles (the CBD-Net protocol)."""
    model.eval()
    tp = fp = fn = tn = 0
    for i in range(0, len(images), 32):
        x = torch.from_numpy(images[i : i + 32]).float().div_(255).unsqueeze(1).to(device)
        pred = (model(x) >= 0.5).squeeze(1).cpu().numpy()
        gt = masks[i : i + 32].astype(bool)
        tp += int((pred & gt).sum())
        fp += int((pred & ~gt).sum())
        fn += int((~pred & gt).sum())
        tn += int((~pred & ~gt).sum())
    oil = tp / max(1, tp + fp + fn)
    bg = tn / max(1, tn + fp + fn)
    return {"oil_iou": oil, "background_iou": bg, "miou": (oil + bg) / 2}


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    args.out.mkdir(parents=True, exist_ok=True)

    pairs = find_pairs(args.data / "images", args.data / "masks")
    train_idx, val_idx = split_by_blocks([p[0] for p in pairs])
    t0 = time.time()
    images, masks = load_arrays(pairs)
    log.info(
        "loaded %d pairs in %.1fs: %d train, %d val",
        len(pairs),
        time.time() - t0,
        len(train_idx),
        len(val_idx),
    )
    tr_x, tr_y = images[train_idx], masks[train_idx]
    va_x, va_y = images[val_idx], masks[val_idx]

    model = SlickNet(args.channels).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = len(tr_x) // args.batch_size
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, steps_per_epoch))
    start_epoch, best, history = 0, -1.0, []
    gen = torch.Generator().manual_seed(args.seed)
    if args.resume and (args.out / "last.pt").exists():
        ckpt = torch.load(args.out / "last.pt", map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["generator"])
        start_epoch, best, history = ckpt["epoch"] + 1, ckpt["best_oil_iou"], ckpt["history"]
        log.info("resumed after epoch %d (best oil IoU %.4f)", ckpt["epoch"] + 1, best)
    else:
        torch.manual_seed(args.seed)
        random.seed(args.seed)
    log.info("SlickNet: %d parameters, device %s, %d epochs", count_parameters(model), device, args.epochs)

    for epoch in range(start_epoch, args.epochs):
        model.train()
        t0 = time.time()
        order = torch.randperm(len(tr_x), generator=gen).numpy()
        losses = []
        for s in range(steps_per_epoch):
            idx = np.sort(order[s * args.batch_size : (s + 1) * args.batch_size])
            x = torch.from_numpy(tr_x[idx]).float().div_(255).unsqueeze(1).to(device)
            y = torch.from_numpy(tr_y[idx]).float().unsqueeze(1).to(device)
            x, y = zoom(x, y, gen, args.zoom)
            x, y = augment(x, y, gen)
            loss = LOSSES[args.loss](model.logits(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        metrics = validate(model, va_x, va_y, device)
        record = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "lr": sched.get_last_lr()[0],
            "seconds": round(time.time() - t0, 1),
            **{k: round(v, 4) for k, v in metrics.items()},
        }
        history.append(record)
        log.info(json.dumps(record))
        state = {
            "model": model.state_dict(),
            "epoch": epoch,
            "metrics": metrics,
            "args": vars(args) | {"data": str(args.data), "out": str(args.out)},
            "channels": list(args.channels),
        }
        if metrics["oil_iou"] > best:
            best = metrics["oil_iou"]
            save_atomic(state, args.out / "best.pt")
        save_atomic(
            state
            | {
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "generator": gen.get_state(),
                "best_oil_iou": best,
                "history": history,
            },
            args.out / "last.pt",
        )
    log.info("done: best validation oil IoU %.4f", best)


if __name__ == "__main__":
    main()
