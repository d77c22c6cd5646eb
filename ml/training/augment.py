"""Training-time augmentation for radiometric invariance, and the torch twin of ml.radiometry's stretch.

Every processing chain renders the same sea differently: another gain or offset (an affine map, which the
percentile stretch removes), a gamma or a log/linear rendering (monotone curves it cannot remove), a
brightness ramp from near to far range, more or less speckle and smoothing, 8-bit
quantisation or none, nodata borders.
`radiometric` draws such a chain per tile, then `percentile_stretch` normalises exactly as the service does
(percentiles 1 and 99 of the valid pixels, grey levels rounded to 1/255, nodata at the median's level), so the
model trains on what it will be served. Masks follow the geometry only; nodata is never oil.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ml.radiometry import HIGH_PERCENTILE, LOW_PERCENTILE


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.empty(n, 1, 1, 1).uniform_(low, high, generator=gen)


def _chance(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=gen) < p


def dihedral(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One of the 8 rotations/flips for the whole batch."""
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x, y = torch.rot90(x, k, (2, 3)), torch.rot90(y, k, (2, 3))
    if torch.rand(1, generator=gen) < 0.5:
        x, y = x.flip(3), y.flip(3)
    return x, y


def radiometric(
    x: torch.Tensor, gen: torch.Generator, p_identity: float = 0.15, log_share: float = 0.0
) -> torch.Tensor:
    """(N, 1, H, W) grey levels in [0, 1] (NaN = nodata) re-rendered by a random processing chain per tile.

    `log_share` of the tiles also get the amplitude reading's log curve (0 keeps the recipe of the round 2
    weights' first run, which did not have it).
    """
    n, _, h, w = x.shape
    out = x.clone()
    # Log/linear renderings: x -> (e^(kx) - 1) / (e^k - 1), k < 0 log-like, k > 0 exp-like (k = 0: identity).
    k = _uniform(n, -5.0, 5.0, gen) * _chance(n, 0.5, gen)
    curved = torch.expm1(k * out) / torch.expm1(k).where(k != 0, torch.ones_like(k))
    out = torch.where(k != 0, curved, out)
    # A rendering read as amplitude (the service takes 20·log10 of 16-bit numbers): x -> log(x + eps),
    # much steeper near black than any curve above, which is where the oil is; eps 0.5/255 to 0.05.
    eps = torch.exp(_uniform(n, -6.24, -3.0, gen))
    logged = torch.log((out + eps) / eps) / torch.log((1 + eps) / eps)
    out = torch.where(_chance(n, log_share, gen), logged, out)
    gamma = torch.exp(_uniform(n, -0.8, 0.8, gen)).where(_chance(n, 0.5, gen), torch.ones(n, 1, 1, 1))
    out = out.clamp_min(0) ** gamma
    # Gain, offset and contrast as one affine map, clipped as an 8-bit tool would.
    affine = _chance(n, 0.6, gen)
    a = _uniform(n, 0.5, 1.6, gen).where(affine, torch.ones(n, 1, 1, 1))
    b = _uniform(n, -0.25, 0.25, gen).where(affine, torch.zeros(n, 1, 1, 1))
    out = out * a + b
    # Incidence-angle ramp: brightness falls steadily across the swath, in any direction.
    angle = _uniform(n, 0.0, 6.2832, gen)
    yy = torch.linspace(-0.5, 0.5, h).view(1, 1, h, 1)
    xx = torch.linspace(-0.5, 0.5, w).view(1, 1, 1, w)
    ramp = torch.cos(angle) * xx + torch.sin(angle) * yy
    out = out + _uniform(n, -0.3, 0.3, gen) * _chance(n, 0.35, gen) * ramp
    # Speckle (multiplicative) and smoothing (multilooking, JPEG): both ways.
    speckle = _uniform(n, 0.0, 0.25, gen) * _chance(n, 0.5, gen)
    out = out * (1 + speckle * torch.randn(out.shape, generator=gen))
    blur = _chance(n, 0.25, gen).view(n)
    if blur.any():
        kernel = torch.tensor([0.25, 0.5, 0.25])
        kernel2d = (kernel[:, None] * kernel[None, :]).view(1, 1, 3, 3)
        smooth = F.conv2d(F.pad(torch.nan_to_num(out[blur]), (1, 1, 1, 1), mode="replicate"), kernel2d)
        out[blur] = torch.where(torch.isnan(out[blur]), out[blur], smooth)
    out = out.clamp(0, 1)
    eight_bit = _chance(n, 0.5, gen)
    out = torch.where(eight_bit, torch.round(out * 255) / 255, out)
    keep = _chance(n, p_identity, gen)
    return torch.where(keep, x, out)


def nodata_border(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, p: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Some tiles lose a band along one side to nodata (a GRD border): NaN in the image, no oil there."""
    x, y = x.clone(), y.clone()
    size = x.shape[-1]
    for i in range(x.shape[0]):
        if torch.rand(1, generator=gen) >= p:
            continue
        width = int(torch.randint(size // 10, size * 2 // 5, (1,), generator=gen))
        side = int(torch.randint(0, 4, (1,), generator=gen))
        band = [slice(None), slice(None)]
        band[side % 2] = slice(0, width) if side < 2 else slice(size - width, size)
        x[i, 0][tuple(band)] = float("nan")
        y[i, 0][tuple(band)] = 0
    return x, y


def scene_context(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, share: float) -> torch.Tensor:
    """Per tile, the pixels its stretch is fitted on: all valid ones, or for `share` of the tiles the sea's.

    In a whole scene the oil is a percent of the pixels or less, so the image's 1st percentile lies in the
    sea and a dark slick is clipped to flat black (the end-to-end scene test: 60 % of its slick at 0), while
    a training tile is 29 % oil and keeps its slicks' texture. Fitting those tiles' stretch on their sea
    alone (oil pixels NaN for the fit only) shows the model the scene's rendering. Tiles with under 5 % sea
    keep the plain fit. Pass the result to `percentile_stretch` as `fit_on`.
    """
    chosen = _chance(x.shape[0], share, gen)
    sea = (y < 0.5) & ~torch.isnan(x)
    enough = sea.flatten(1).float().mean(1).view(-1, 1, 1, 1) >= 0.05
    return torch.where(chosen & enough & ~sea, torch.full_like(x, float("nan")), x)


def percentile_stretch(x: torch.Tensor, fit_on: torch.Tensor | None = None) -> torch.Tensor:
    """What ml.radiometry.Stretch does, per tile: percentiles of valid pixels to 0..1 in 1/255 steps.

    `fit_on` (same shape, NaN = left out) gives the pixels the percentiles come from (default `x`).
    """
    flat = (x if fit_on is None else fit_on).flatten(1)
    q = torch.tensor([LOW_PERCENTILE / 100, 0.5, HIGH_PERCENTILE / 100], dtype=flat.dtype)
    low, median, high = torch.nanquantile(flat, q, dim=1).view(3, -1, 1, 1, 1)
    span = (high - low).clamp_min(1e-6)
    valid_span = (high - low) > 0
    scaled = ((x - low) / span).clamp(0, 1).where(valid_span, torch.full_like(x, 128 / 255))
    fill = ((median - low) / span).clamp(0, 1).where(valid_span, torch.full_like(median, 128 / 255))
    fill = torch.round(fill * 255) / 255
    scaled = torch.round(scaled * 255) / 255
    return torch.where(torch.isnan(x), fill.expand_as(x), scaled).nan_to_num(128 / 255)


LEVEL_OFFSET = 0.25  # level_shift's largest grey-level move by default (round 4's recipe)
LEVEL_GAIN = 0.6  # and its smallest contrast factor


def level_shift(
    x: torch.Tensor,
    gen: torch.Generator,
    share: float,
    max_offset: float = LEVEL_OFFSET,
    min_gain: float = LEVEL_GAIN,
) -> torch.Tensor:
    """For `share` of the tiles, after the stretch: grey levels moved by -max_offset..+max_offset and their
    contrast scaled by min_gain..1.2 about mid-grey, clipped and quantised again.

    A whole scene is stretched once, so a tile of its far range, where backscatter falls with the
    incidence angle, sits darker than mid-grey, and a decimated tile (less speckle) spans fewer levels; a
    tile stretched on its own never shows either. Without this, a network learns "darker than mid-grey is
    oil" and marks a scene's whole far range (issue 15, model card: round 3). How far a scene moves its
    sea: bench.far_range's scenes put it at +0.26..+0.32 and 0.41-0.45 of a lone tile's contrast (round 5).
    """
    n = x.shape[0]
    chosen = _chance(n, share, gen)
    offset = _uniform(n, -max_offset, max_offset, gen)
    gain = _uniform(n, min_gain, 1.2, gen)
    shifted = torch.round(((x - 0.5) * gain + 0.5 + offset).clamp(0, 1) * 255) / 255
    return torch.where(chosen, shifted, x)


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


def crop(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random size x size window of each tile, cut after the stretch: its grey levels are the whole tile's.

    A pretrained encoder costs 5.5x SlickNet's step on 2 cores; a 128 crop costs a quarter of a tile, which
    makes it trainable here, and the network is fully convolutional, so it serves whole tiles unchanged.
    """
    if size <= 0 or size >= x.shape[-1]:
        return x, y
    starts = torch.randint(0, x.shape[-1] - size + 1, (len(x), 2), generator=gen).tolist()
    xs = torch.stack([x[i, :, t : t + size, s : s + size] for i, (t, s) in enumerate(starts)])
    ys = torch.stack([y[i, :, t : t + size, s : s + size] for i, (t, s) in enumerate(starts)])
    return xs, ys


def window_stretch(x: torch.Tensor, gen: torch.Generator, share: float) -> torch.Tensor:
    """For `share` of the crops, the stretch fitted again on the crop alone, as the service fits it on an
    uploaded image that is only a small window of the sea.

    A crop cut from a stretched tile keeps the tile's grey levels, so calm sea beside a slick stays
    mid-grey; stretched on its own, its darkest speckle becomes black and reads as oil. Nodata is already
    at the median's level here, so it counts in the fit as sea would.

    Off by default: `--window-share 0.3` did not lower the false alarms on oil-free validation windows
    (2.30 % against 2.29 % without it) and stood 0.003-0.006 below run H's validation IoU mid-run
    (ml/models/MODEL_CARD.md, round 11).
    """
    if share <= 0:  # no draw from `gen`: earlier recipes replay unchanged
        return x
    chosen = _chance(x.shape[0], share, gen)
    return torch.where(chosen, percentile_stretch(x), x)
