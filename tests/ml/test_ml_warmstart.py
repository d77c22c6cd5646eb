"""Warm start from an exported model: the unfolded BatchNorms give back the ONNX model (needs torch, onnx)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from ml.training.model import SlickNet  # noqa: E402
from ml.training.warmstart import check_against_onnx, load_folded  # noqa: E402

CHANNELS = (4, 8, 16)


def _trained_looking_model() -> torch.nn.Module:
    """A small SlickNet whose BatchNorms hold non-trivial statistics, as a trained one's do."""
    torch.manual_seed(0)
    model = SlickNet(CHANNELS)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _export(model: torch.nn.Module, path: Path) -> None:
    torch.onnx.export(
        model,
        (torch.rand(1, 1, 64, 64),),
        str(path),
        input_names=["image"],
        output_names=["oil_probability"],
        dynamic_axes={"image": {0: "batch"}, "oil_probability": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def test_unfolded_weights_match_the_onnx_model_in_eval_and_train_mode(tmp_path: Path) -> None:
    onnx_path = tmp_path / "folded.onnx"
    _export(_trained_looking_model(), onnx_path)
    calibration = torch.rand(16, 1, 64, 64)
    fresh = SlickNet(CHANNELS)
    load_folded(fresh, onnx_path, calibration)

    assert check_against_onnx(fresh, onnx_path, torch.rand(3, 1, 64, 64)) < 1e-5
    # Train mode normalises by the batch's own statistics: on the calibration batch those are the ones the
    # BatchNorms were fitted to, so training starts from the exported network, not a rescaled one.
    fresh.train()
    with torch.no_grad():
        trained_mode = fresh(calibration)
        fresh.eval()
        eval_mode = fresh(calibration)
    assert torch.allclose(trained_mode, eval_mode, atol=1e-4)


def test_a_model_of_another_shape_is_refused(tmp_path: Path) -> None:
    onnx_path = tmp_path / "folded.onnx"
    _export(_trained_looking_model(), onnx_path)
    with pytest.raises(ValueError, match=r"shape mismatch|convolutions"):
        load_folded(SlickNet((4, 8, 32)), onnx_path, torch.rand(2, 1, 64, 64))
