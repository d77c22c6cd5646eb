"""Wide dark slicks drawn into oil-free crops, labelled oil: the guard that `--hard-negatives` needs.

Round 8 (ml/models/MODEL_CARD.md) drew the oil-free chips the served weights mark most, calm and biogenic
look-alikes, and the false alarms on held-out chips fell from 1.93 % to 0.50 %; but the model then took
every wide, smooth dark patch for a look-alike and found 11 % of bench.far_range's slicks (a fresh spill:
kilometres long, a uniform -10 dB). The SOS tiles hold few such slicks, so nothing in training said
otherwise. `--synthetic-slicks S` draws one into S of the oil-free crops: an ellipse of random size,
elongation and heading, its outline wobbled so that "a perfect ellipse" is no cue, darkened by a uniform
share of the grey range (a slick damps the sea by a set number of dB, and 8-bit renderings are close to
linear in dB), its speckle kept (multiplicative in power, additive in dB), its edge soft over a few pixels.
Drawn before the radiometric chain, so the chain re-renders it with its sea.
"""

from __future__ import annotations

import math

import torch

DARKENING = (0.12, 0.45)  # share of the grey range: 3-11 dB on a 25 dB rendering
HALF_WIDTH = (5.0, 40.0)  # semi-minor axis, pixels (bench.far_range's slicks: 36-48 at 20 m)
ELONGATION = (2.0, 8.0)  # semi-major over semi-minor
EDGE = (1.0, 4.0)  # width of the soft edge, pixels
WOBBLE = 0.08  # largest amplitude of each of the outline's harmonics 2-5


def _draw(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(1, generator=gen))


def slick_shape(size: int, gen: torch.Generator) -> torch.Tensor:
    """(size, size) darkening weights in [0, 1] of one slick: 1 inside, 0 outside, soft at the edge."""
    b = _draw(gen, *HALF_WIDTH)
    a = b * _draw(gen, *ELONGATION)
    row, col = (_draw(gen, 0.1 * size, 0.9 * size) for _ in range(2))
    heading = _draw(gen, 0.0, math.pi)
    rows = torch.arange(size, dtype=torch.float32).view(-1, 1) + 0.5 - row
    cols = torch.arange(size, dtype=torch.float32).view(1, -1) + 0.5 - col
    u = cols * math.cos(heading) + rows * math.sin(heading)
    v = -cols * math.sin(heading) + rows * math.cos(heading)
    theta = torch.atan2(v / b, u / a)
    wobble = torch.ones_like(theta)
    for k in range(2, 6):
        wobble += _draw(gen, 0.0, WOBBLE) * torch.cos(k * theta + _draw(gen, 0.0, 2 * math.pi))
    radius = torch.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble
    # Distance inside the outline in pixels, roughly: (1 - radius) scaled by the semi-minor axis.
    return ((1 - radius) * b / _draw(gen, *EDGE) + 0.5).clamp(0, 1)


def paste_slicks(x: torch.Tensor, gen: torch.Generator, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, H, W) oil-free grey levels in [0, 1] (NaN = land) and their masks, `share` of them with a slick.

    The mask is the slick's inner half of the soft edge, never on land (NaN stays NaN, and is no oil).
    The darkening is at most the sea's 5th percentile, so a slick keeps its speckle and is never a flat
    black patch, as a real slick in a dB rendering keeps its speckle. (Round 9 suspected clipped slicks of
    bench.scene's specks beside hidden land; they were slivers of land left visible, which ml.scene.land's
    margin now hides: ml/models/MODEL_CARD.md, round 10.) A crop too dark for the least darkening gets none.
    """
    x, y = x.clone(), torch.zeros_like(x)
    if share <= 0:  # draws nothing, so a run without slicks draws as before they existed
        return x, y
    for i in range(x.shape[0]):
        if float(torch.rand(1, generator=gen)) >= share:
            continue
        weight = slick_shape(x.shape[-1], gen)
        sea = x[i, 0][~torch.isnan(x[i, 0])]
        floor = float(torch.quantile(sea, 0.05)) if sea.numel() else 0.0
        darkening = min(_draw(gen, *DARKENING), floor)
        if darkening < DARKENING[0]:
            continue
        x[i, 0] = (x[i, 0] - darkening * weight).clamp_min(0)
        y[i, 0] = ((weight >= 0.5) & ~torch.isnan(x[i, 0])).float()
    return x, y
