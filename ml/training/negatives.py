"""Oil-free crops for each training batch, and the hard ones among them drawn more often.

The served weights' false alarms on held-out oil-free chips sit on a few of them (30 of 485 chips hold all
of the 1.93 %, ten of them three quarters): wide calm or biogenic look-alikes marked over half their area.
Such chips are rare among the 2,924 training chips, so a negative drawn uniformly seldom shows one.
`--hard-negatives` draws a share of each batch's negatives in proportion to how much of their chip the
starting weights mark oil (scored once, before the first step, and kept beside the checkpoints so that a
resumed run draws from the same weights); the rest stay uniform, so clean sea is not forgotten.
Off by default: measured in ml/models/MODEL_CARD.md round 8, it cut those false alarms from 1.93 % to
0.50 % but taught the model that a wide, smooth dark patch is a look-alike, and whole scenes' wide slicks
went unseen (bench.far_range).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ml import runners
from ml.training.validation import normalised, predict

log = logging.getLogger("ml.training.negatives")


Marker = Callable[[np.ndarray], np.ndarray]  # uint8 (N, H, W) model-input tiles -> boolean oil masks


def torch_marker(model: torch.nn.Module, device: torch.device) -> Marker:
    """The weights being trained (a resumed run scores the weights it resumes from)."""
    return lambda grey: predict(model, grey, device)


def onnx_marker(path: Path, threads: int, batch: int = 16) -> Marker:
    """An exported file through ONNX Runtime: the served weights scored the 2,924 training chips in 126 s
    on 2 cores against 11-12 minutes with torch, every chip's share within 9e-6 of torch's (round 9)."""

    def mark(grey: np.ndarray) -> np.ndarray:
        session = runners.session(path, threads)  # opened only if the scores are not kept yet
        out = []
        for i in range(0, len(grey), batch):
            x = grey[i : i + batch, None].astype(np.float32) / 255
            out.append(session.run(None, {"image": x})[0][:, 0] >= 0.5)
        return np.concatenate(out)

    return mark


def marked_shares(mark: Marker, chips: np.ndarray, land: np.ndarray) -> np.ndarray:
    """Share of each chip's valid pixels that `mark` calls oil, the chip converted as the service would."""
    grey, valid = normalised(chips, land)
    marked = mark(grey) & valid
    shares: np.ndarray = marked.sum(axis=(1, 2)) / np.maximum(1, valid.sum(axis=(1, 2)))
    return shares


def hard_weights(path: Path, mark: Marker, chips: np.ndarray, land: np.ndarray) -> torch.Tensor | None:
    """Drawing weights of the chips (their marked shares), read from `path` or scored and saved there.

    None when the starting weights mark no chip at all: then every negative is drawn uniformly.
    """
    if path.exists():
        shares = np.load(path)
    else:
        shares = marked_shares(mark, chips, land)
        np.save(path, shares)
    log.info(
        "hard negatives: %d of %d chips marked, %.2f %% of the chips' pixels on average",
        int(np.count_nonzero(shares)),
        len(shares),
        100 * float(shares.mean()),
    )
    return torch.from_numpy(shares).double() if shares.any() else None


def pick_chips(
    count: int, total: int, weights: torch.Tensor | None, share: float, gen: torch.Generator
) -> list[int]:
    """Indices of `count` chips: round(count * share) by `weights`, the rest uniformly among `total`."""
    hard = round(count * share) if weights is not None else 0
    picks: list[int] = torch.randint(0, total, (count - hard,), generator=gen).tolist()
    if hard and weights is not None:
        picks += torch.multinomial(weights, hard, replacement=True, generator=gen).tolist()
    return picks


def random_crops(
    chips: np.ndarray, land: np.ndarray, picks: list[int], size: int, gen: torch.Generator
) -> torch.Tensor:
    """Random size x size crops of the picked chips as grey levels in [0, 1], land as NaN (nodata)."""
    out = torch.empty(len(picks), 1, size, size)
    for i, k in enumerate(picks):
        top = int(torch.randint(0, chips.shape[1] - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, chips.shape[2] - size + 1, (1,), generator=gen))
        crop = torch.from_numpy(chips[k, top : top + size, left : left + size]).float() / 255
        crop[torch.from_numpy(land[k, top : top + size, left : left + size])] = float("nan")
        out[i, 0] = crop
    return out
