"""Train SlickNet on the SOS Sentinel-1 tiles: `python -m ml.training.train [--resume]`.

Checkpoints after every epoch (`last.pt`, plus `best.pt` on a new best validation oil IoU), so a run can span
several sittings: `--resume` continues from `last.pt` with the same schedule. Uses CUDA when available.
`--keep-epochs` keeps every epoch's scored weights too: the validation tiles are stretched one by one, and
a whole scene stretched once can rank the epochs otherwise (ml/models/MODEL_CARD.md, round 4).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.training.augment import (
    LEVEL_GAIN,
    LEVEL_OFFSET,
    crop,
    dihedral,
    level_shift,
    nodata_border,
    percentile_stretch,
    radiometric,
    scene_context,
    window_stretch,
    zoom,
)
from ml.training.data import (
    find_pairs,
    load_arrays,
    load_negatives,
    split_by_blocks,
    split_negatives,
)
from ml.training.losses import LOSSES
from ml.training.model import build_model, count_parameters
from ml.training.negatives import hard_weights, onnx_marker, pick_chips, random_crops, torch_marker
from ml.training.options import parse_args
from ml.training.synthetic import paste_slicks
from ml.training.validation import normalised, validate
from ml.training.warmstart import check_against_onnx, load_folded

log = logging.getLogger("ml.training.train")


def augment(
    x: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
    log_share: float = 0.0,
    scene_share: float = 0.0,
    level_share: float = 0.0,
    level_offset: float = LEVEL_OFFSET,
    level_gain: float = LEVEL_GAIN,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Geometry, a random processing chain, nodata borders, then the service's own normalisation."""
    x, y = dihedral(x, y, gen)
    x, y = nodata_border(radiometric(x, gen, log_share=log_share), y, gen)
    fit_on = scene_context(x, y, gen, scene_share) if scene_share > 0 else None
    x = percentile_stretch(x, fit_on)
    if level_share > 0:
        x = level_shift(x, gen, level_share, level_offset, level_gain)
    return x, y


def lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))


def logits_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Every architecture of ml.training.model has `logits` (the loss wants them, not probabilities)."""
    logits: torch.Tensor = model.logits(x)  # type: ignore[operator]
    return logits


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def initialise(model: torch.nn.Module, path: Path, train_images: np.ndarray) -> None:
    """Earlier weights: a checkpoint's as they are, an ONNX file's unfolded (ml.training.warmstart)."""
    if path.suffix == ".pt":
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["model"])
        log.info("weights from %s", path)
        return
    picks = np.random.default_rng(0).choice(len(train_images), size=32, replace=False)
    tiles, _ = normalised(train_images[np.sort(picks)])
    calibration = torch.from_numpy(tiles).float().div_(255).unsqueeze(1)
    load_folded(model, path, calibration)
    error = check_against_onnx(model, path, calibration[:4])
    if error > 1e-3:
        raise SystemExit(f"{path}: the unfolded weights differ from the ONNX model by {error:.2g}")
    log.info("weights from %s (unfolded; largest difference to the ONNX model %.1g)", path, error)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv, __doc__)
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
    tr_x, tr_y = images[train_idx], masks[train_idx]
    va_x, _ = normalised(images[val_idx])
    va_y = masks[val_idx]
    neg_train: tuple[np.ndarray, np.ndarray] | None = None
    neg_val: tuple[np.ndarray, np.ndarray] | None = None
    if str(args.negatives) != "none" and args.negatives_per_batch > 0:
        chips, land, scenes = load_negatives(args.negatives)
        neg_tr, neg_va = split_negatives(scenes)
        neg_train = (chips[neg_tr], land[neg_tr])
        size = tr_x.shape[-1]
        top, left = (chips.shape[1] - size) // 2, (chips.shape[2] - size) // 2
        centre = np.s_[:, top : top + size, left : left + size]
        neg_val = normalised(chips[neg_va][centre], land[neg_va][centre])
        log.info("oil-free chips: %d train, %d val (split by scene id)", len(neg_tr), len(neg_va))
    log.info(
        "loaded %d pairs in %.1fs: %d train, %d val",
        len(pairs),
        time.time() - t0,
        len(train_idx),
        len(val_idx),
    )

    model = build_model(args.arch, args.channels)
    if args.init is not None and not args.resume:
        initialise(model, args.init, tr_x)
    model = model.to(device)
    ema = (
        torch.optim.swa_utils.AveragedModel(
            model,
            multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema),  # type: ignore[no-untyped-call]
            use_buffers=True,
        )
        if args.ema > 0
        else None
    )
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = len(tr_x) // args.batch_size
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, steps_per_epoch))
    start_epoch, best, history = 0, -1.0, []
    gen = torch.Generator().manual_seed(args.seed)
    if args.resume and (args.out / "last.pt").exists():
        ckpt = torch.load(args.out / "last.pt", map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        if ema is not None and "ema" in ckpt:
            ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        gen.set_state(ckpt["generator"])
        start_epoch, best, history = ckpt["epoch"] + 1, ckpt["best_oil_iou"], ckpt["history"]
        log.info("resumed after epoch %d (best oil IoU %.4f)", ckpt["epoch"] + 1, best)
    else:
        torch.manual_seed(args.seed)
        random.seed(args.seed)
    log.info(
        "%s: %d parameters, device %s, %d epochs", args.arch, count_parameters(model), device, args.epochs
    )
    hard = None
    if neg_train is not None and args.hard_negatives > 0:
        onnx_start = args.init is not None and args.init.suffix == ".onnx" and not args.resume
        mark = onnx_marker(args.init, args.threads) if onnx_start else torch_marker(model, device)
        hard = hard_weights(args.out / "hard_negatives.npy", mark, *neg_train)

    for epoch in range(start_epoch, args.epochs):
        model.train()
        t0 = time.time()
        order = torch.randperm(len(tr_x), generator=gen).numpy()
        losses = []
        for s in range(steps_per_epoch):
            idx = np.sort(order[s * args.batch_size : (s + 1) * args.batch_size])
            x = torch.from_numpy(tr_x[idx]).float().div_(255).unsqueeze(1)
            y = torch.from_numpy(tr_y[idx]).float().unsqueeze(1)
            if neg_train is not None:
                count = args.negatives_per_batch
                picks = pick_chips(count, len(neg_train[0]), hard, args.hard_negatives, gen)
                extra, extra_y = paste_slicks(
                    random_crops(*neg_train, picks, x.shape[-1], gen), gen, args.synthetic_slicks
                )
                x, y = torch.cat([x, extra]), torch.cat([y, extra_y])
            x, y = zoom(x, y, gen, args.zoom)
            x, y = augment(
                x,
                y,
                gen,
                args.log_share,
                args.scene_share,
                args.level_share,
                args.level_offset,
                args.level_gain,
            )
            x, y = crop(x, y, gen, args.crop)
            x = window_stretch(x, gen, args.window_share)
            loss = LOSSES[args.loss](logits_of(model, x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(loss.item())
        scored = ema.module if ema is not None else model
        metrics = validate(scored, va_x, va_y, device, neg_val)
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
            "model": scored.state_dict(),
            "epoch": epoch,
            "metrics": metrics,
            "args": vars(args)
            | {"data": str(args.data), "out": str(args.out), "negatives": str(args.negatives)},
            "arch": args.arch,
            "channels": list(args.channels),
        }
        if metrics["oil_iou"] > best:
            best = metrics["oil_iou"]
            save_atomic(state, args.out / "best.pt")
        if args.keep_epochs:
            save_atomic(state, args.out / f"epoch-{epoch + 1:02d}.pt")
        save_atomic(
            state
            | {
                "model": model.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
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
