"""Radiometric augmentation and the torch twin of the service's stretch (needs torch)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.radiometry import convert

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")

from ml.training.augment import (  # noqa: E402
    dihedral,
    level_shift,
    nodata_border,
    percentile_stretch,
    radiometric,
    scene_context,
    window_stretch,
)


def tiles(n: int = 6, size: int = 64) -> torch.Tensor:
    rng = np.random.default_rng(0)
    x = np.clip(rng.gamma(4.0, 1 / 4.0, (n, 1, size, size)) * 0.4, 0, 1).astype(np.float32)
    x[:, :, 20:40, 10:50] *= 0.3  # a dark slick
    return torch.from_numpy(x)


def test_torch_stretch_is_the_services_stretch() -> None:
    """Training must see exactly what the service feeds the model, nodata included."""
    x = tiles()
    grey = torch.round(x * 255)
    grey[1, 0, :, :7] = float("nan")  # nodata in one tile
    ours = percentile_stretch(grey / 255)
    for i in range(len(x)):
        band = grey[i, 0].numpy()
        expected = convert(np.nan_to_num(band, nan=0).astype(np.uint8), mask=~np.isnan(band)).gray
        diff = np.abs(ours[i, 0].numpy() * 255 - expected)
        # float32 in [0, 1] against [0, 255]: a value on a rounding edge may land one level apart.
        assert diff.max() <= 1 + 1e-3 and (diff > 0.5).mean() < 0.01


def test_stretch_of_constant_and_empty_tiles_is_mid_grey() -> None:
    x = torch.stack([torch.full((1, 8, 8), 0.3), torch.full((1, 8, 8), float("nan"))])
    out = percentile_stretch(x)
    assert torch.allclose(out, torch.full_like(out, 128 / 255))


def test_radiometric_keeps_shape_range_and_nodata() -> None:
    x = tiles()
    x[0, 0, :5] = float("nan")
    gen = torch.Generator().manual_seed(1)
    outs = [radiometric(x, gen) for _ in range(4)]
    for out in outs:
        assert out.shape == x.shape
        valid = ~torch.isnan(out)
        assert torch.equal(valid, ~torch.isnan(x))
        assert out[valid].min() >= 0 and out[valid].max() <= 1
    assert any(not torch.allclose(torch.nan_to_num(o), torch.nan_to_num(x)) for o in outs)


def test_the_log_rendering_spreads_the_darkest_levels_apart() -> None:
    """log_share = 1 sends every tile through log(x + eps): the amplitude reading's steep curve near black."""
    x = torch.linspace(0, 1, 256).view(1, 1, 16, 16).repeat(256, 1, 1, 1)

    def dark_span(log_share: float) -> torch.Tensor:
        out = radiometric(x, torch.Generator().manual_seed(3), p_identity=0.0, log_share=log_share)
        return (out.flatten(1)[:, 32] - out.flatten(1)[:, 0]).median()

    # The first eighth of the grey scale: a small part of the output without the log curve, half with it.
    assert dark_span(0.0) < 0.15
    assert dark_span(1.0) > 0.35


def test_nodata_border_is_nan_in_the_image_and_no_oil() -> None:
    x = tiles(40)
    y = torch.ones_like(x)
    gen = torch.Generator().manual_seed(2)
    bx, by = nodata_border(x, y, gen, p=1.0)
    holes = torch.isnan(bx)
    assert holes.flatten(1).any(1).all()  # every tile lost a band
    assert (by[holes] == 0).all() and (by[~holes] == 1).all()


def test_dihedral_moves_image_and_mask_together() -> None:
    x = tiles(2)
    y = (x < 0.1).float()
    gen = torch.Generator().manual_seed(3)
    for _ in range(6):
        rx, ry = dihedral(x, y, gen)
        assert torch.equal((rx < 0.1).float(), ry)


def test_lite_unet_maps_grey_tiles_to_probabilities() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    from ml.training.model import build_model

    model = build_model("lite-unet", pretrained=False).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 96))
    assert out.shape == (1, 1, 64, 96) and 0 <= float(out.min()) <= float(out.max()) <= 1
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet")


def test_scene_context_clips_a_dark_slick_as_a_whole_scene_would() -> None:
    gen = torch.Generator().manual_seed(0)
    sea = 0.6 + 0.1 * torch.rand((2, 1, 64, 64), generator=gen)
    y = torch.zeros((2, 1, 64, 64))
    y[:, :, 10:40, 10:40] = 1.0  # 22 % oil, darker and textured
    x = torch.where(y > 0, sea - 0.4, sea)
    tile_fit = percentile_stretch(x)
    scene_fit = percentile_stretch(x, scene_context(x, y, gen, share=1.0))
    oil = y > 0
    assert (tile_fit[oil] == 0).float().mean() < 0.1  # its own percentiles keep the slick's texture
    assert (scene_fit[oil] == 0).all()  # fitted on the sea, the slick is below the 1st percentile
    assert torch.equal(percentile_stretch(x, scene_context(x, y, gen, share=0.0)), tile_fit)


def test_scene_context_keeps_the_plain_fit_for_tiles_of_almost_only_oil() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((1, 1, 32, 32), generator=gen)
    y = torch.ones((1, 1, 32, 32))
    y[0, 0, 0, :20] = 0  # 2 % sea: too little to fit a stretch on
    assert torch.equal(scene_context(x, y, gen, share=1.0), x)


def test_level_shift_moves_whole_tiles_as_a_scene_stretch_leaves_them() -> None:
    gen = torch.Generator().manual_seed(0)
    x = percentile_stretch(tiles(n=64))
    assert torch.equal(level_shift(x, gen, share=0.0), x)
    shifted = level_shift(x, gen, share=1.0)
    assert shifted.shape == x.shape and shifted.min() >= 0 and shifted.max() <= 1
    assert torch.equal(torch.round(shifted * 255) / 255, shifted)  # still 8-bit grey levels
    means = (shifted - x).flatten(1).mean(1)
    assert means.min() < -0.1 and means.max() > 0.1  # darker and brighter tiles both
    # Within a tile the order of the grey levels is kept: the slick stays darker than its sea.
    assert (shifted[:, :, 20:40, 10:50].flatten(1).mean(1) < shifted[:, :, 45:, :].flatten(1).mean(1)).all()


def test_level_shift_reaches_a_scene_stretchs_compression() -> None:
    """A scene compresses its sea to ~0.4 of a lone tile's contrast; the wide ranges reach that."""
    x = percentile_stretch(tiles(n=256))
    spread = x.flatten(1).std(1)
    default = level_shift(x, torch.Generator().manual_seed(0), share=1.0).flatten(1).std(1) / spread
    wide = level_shift(x, torch.Generator().manual_seed(0), 1.0, max_offset=0.35, min_gain=0.3)
    ratio = wide.flatten(1).std(1) / spread
    assert default.min() > 0.55 and ratio.min() < 0.35 and ratio.max() <= 1.25
    moved = (wide - x).flatten(1).mean(1)
    assert moved.min() < -0.2 and moved.max() > 0.28  # past the default's +-0.25, both ways


def test_window_stretch_fits_a_calm_window_on_itself_as_the_service_would() -> None:
    """Calm sea beside a dark slick sits in the upper grey levels of its tile's stretch; a window of that sea
    uploaded alone is spread by the service over 0..255, its darkest speckle black as oil is."""
    gen = torch.Generator().manual_seed(0)
    x = (0.5 + 0.04 * torch.randn(4, 1, 128, 128, generator=gen)).clamp(0, 1)
    x[:, :, :48] = 0.1  # the slick: the tile's 1st percentile lies in it
    sea = percentile_stretch(x)[:, :, 64:, 64:].contiguous()
    assert torch.equal(window_stretch(sea, gen, share=0.0), sea)
    alone = window_stretch(sea, gen, share=1.0)
    for i in range(len(sea)):
        band = np.round(sea[i, 0].numpy() * 255).astype(np.uint8)
        assert np.abs(alone[i, 0].numpy() * 255 - convert(band).gray).max() <= 1 + 1e-3
    assert sea.flatten(1).quantile(0.01, 1).min() > 0.5  # in its tile: no pixel of this sea is dark
    assert alone.flatten(1).quantile(0.01, 1).max() < 0.02  # alone: its darkest speckle is black
