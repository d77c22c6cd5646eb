"""Wide dark slicks drawn into oil-free crops, labelled oil (torch)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")

from ml.training.synthetic import DARKENING, HALF_WIDTH, paste_slicks, slick_shape  # noqa: E402


def _sea(n: int = 16, size: int = 128) -> torch.Tensor:
    x = 0.6 + 0.05 * torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(0))
    x[0, 0, :, :40] = float("nan")  # land in the first crop
    return x


def test_share_zero_leaves_the_crops_as_they_were_and_marks_nothing() -> None:
    x = _sea()
    out, mask = paste_slicks(x, torch.Generator().manual_seed(1), 0.0)
    assert torch.equal(out.nan_to_num(-1), x.nan_to_num(-1)) and not mask.any()


def test_every_slick_is_darker_than_its_sea_by_the_drawn_share_and_marked() -> None:
    x = _sea()
    out, mask = paste_slicks(x, torch.Generator().manual_seed(2), 1.0)
    assert mask.shape == x.shape and set(mask.unique().tolist()) <= {0.0, 1.0}
    for i in range(1, len(x)):  # crop 0 may hide its slick under land
        inside = mask[i, 0].bool()
        assert inside.any(), i
        drop = (x[i, 0] - out[i, 0])[inside]
        assert DARKENING[0] * 0.5 <= float(drop.median()) <= DARKENING[1] + 1e-6
        assert torch.equal(
            out[i, 0][~inside & (x[i, 0] == out[i, 0])], x[i, 0][~inside & (x[i, 0] == out[i, 0])]
        )
    assert 0.01 < float(mask.mean()) < 0.5


def test_land_stays_nodata_and_is_never_oil() -> None:
    x = _sea()
    out, mask = paste_slicks(x, torch.Generator().manual_seed(3), 1.0)
    assert torch.isnan(out[0, 0, :, :40]).all()
    assert not mask[0, 0, :, :40].any()
    assert not torch.isnan(out[1:]).any()


def test_the_same_generator_draws_the_same_slicks() -> None:
    first = paste_slicks(_sea(), torch.Generator().manual_seed(4), 0.5)
    second = paste_slicks(_sea(), torch.Generator().manual_seed(4), 0.5)
    assert all(torch.equal(a.nan_to_num(-1), b.nan_to_num(-1)) for a, b in zip(first, second, strict=True))
    assert 0 < int(first[1].flatten(1).any(1).sum()) < 16


def test_a_slick_is_solid_inside_with_a_soft_edge() -> None:
    for seed in range(20):
        weight = slick_shape(256, torch.Generator().manual_seed(seed))
        assert float(weight.min()) >= 0 and float(weight.max()) == 1
        # Its centre lies in the crop, so at least a quarter of its smallest drawn size is there.
        assert int((weight >= 0.5).sum()) >= 3.14 * HALF_WIDTH[0] ** 2 * 2 * 0.68**2 / 4
        soft = (weight > 0) & (weight < 1)
        assert 0 < int(soft.sum()) < int((weight > 0).sum())


def test_a_slick_keeps_its_speckle_and_a_sea_too_dark_for_one_gets_none() -> None:
    gen = torch.Generator().manual_seed(5)
    sea = (0.3 + 0.05 * torch.randn(8, 1, 128, 128, generator=gen)).clamp(0, 1)
    out, mask = paste_slicks(sea, torch.Generator().manual_seed(6), 1.0)
    for i in range(len(sea)):
        inside = mask[i, 0].bool()
        assert inside.any()
        assert float((out[i, 0][inside] == 0).float().mean()) < 0.1  # hardly any pixel clipped to black
        assert float(out[i, 0][inside].std()) > 0.5 * float(sea[i, 0].std())
    dark = (0.06 + 0.02 * torch.randn(8, 1, 128, 128, generator=gen)).clamp(0, 1)
    out, mask = paste_slicks(dark, torch.Generator().manual_seed(7), 1.0)
    assert not mask.any() and torch.equal(out, dark)
