"""Oil-free crops for training batches, the hard ones drawn by how much the starting weights mark (torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")

from ml.training.negatives import (  # noqa: E402
    hard_weights,
    marked_shares,
    onnx_marker,
    pick_chips,
    random_crops,
    torch_marker,
)

CPU = torch.device("cpu")


class _MarksSaturated(torch.nn.Module):
    """Oil wherever the stretched grey level is saturated: a few % of speckle, all of a bright patch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x >= 0.99).float()


class _MarksNothing(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _chips() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    chips = rng.integers(20, 40, size=(4, 64, 64)).astype(np.uint8)
    chips[2, :, :32] = 200  # half of chip 2 stands out from its sea
    land = np.zeros(chips.shape, bool)
    land[3, :16] = True
    return chips, land


def test_share_zero_draws_as_the_uniform_sampler_did() -> None:
    weights = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    picks = pick_chips(6, 4, weights, 0.0, torch.Generator().manual_seed(3))
    assert picks == torch.randint(0, 4, (6,), generator=torch.Generator().manual_seed(3)).tolist()


def test_the_hard_share_comes_from_the_marked_chips_only() -> None:
    weights = torch.tensor([0.0, 0.0, 0.5, 0.0], dtype=torch.float64)
    picks = pick_chips(6, 4, weights, 0.5, torch.Generator().manual_seed(1))
    assert len(picks) == 6
    assert picks[3:] == [2, 2, 2]


def test_chips_are_scored_once_and_the_scores_kept(tmp_path: Path) -> None:
    chips, land = _chips()
    path = tmp_path / "hard_negatives.npy"
    weights = hard_weights(path, torch_marker(_MarksSaturated(), CPU), chips, land)
    assert weights is not None
    shares = weights.numpy()
    assert shares.argmax() == 2
    assert shares[2] == pytest.approx(0.5, abs=0.02)
    assert shares[[0, 1, 3]].max() < 0.1  # the speckle's top level, ties included
    assert np.allclose(np.load(path), shares)
    # A resumed run reads the kept scores, whatever the model says now.
    again = hard_weights(path, torch_marker(torch.nn.Identity(), CPU), chips, land)
    assert again is not None and torch.equal(again, weights)


def test_nothing_marked_means_uniform_draws(tmp_path: Path) -> None:
    chips, land = _chips()
    assert hard_weights(tmp_path / "h.npy", torch_marker(_MarksNothing(), CPU), chips, land) is None


def test_crops_hold_land_as_nodata() -> None:
    chips, land = _chips()
    crops = random_crops(chips, land, [3, 3], 64, torch.Generator().manual_seed(0))
    assert crops.shape == (2, 1, 64, 64)
    assert torch.isnan(crops[:, 0, :16]).all()
    assert not torch.isnan(crops[:, 0, 16:]).any()


class _Bright(torch.nn.Module):
    """A steep sigmoid above grey level 0.8: its marks do not hang on rounding, so both runtimes agree."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(60 * (x - 0.805))


def test_an_onnx_start_is_scored_by_onnx_runtime_as_torch_scores_it(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    chips, land = _chips()
    path = tmp_path / "bright.onnx"
    torch.onnx.export(
        _Bright(),
        (torch.rand(1, 1, 64, 64),),
        str(path),
        input_names=["image"],
        output_names=["oil_probability"],
        dynamic_axes={"image": {0: "batch"}, "oil_probability": {0: "batch"}},
        dynamo=False,
    )
    by_onnx = marked_shares(onnx_marker(path, 1, batch=3), chips, land)
    by_torch = marked_shares(torch_marker(_Bright(), CPU), chips, land)
    assert by_onnx.shape == (4,) and by_onnx[2] > 0.4
    assert np.array_equal(by_onnx, by_torch)
