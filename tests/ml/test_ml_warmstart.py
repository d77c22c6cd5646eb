"""Warm start from an exported model: the unfolded BatchNorms give back the ONNX model (needs torch, onnx)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from ml.training.model import LiteUNet, SlickNet  # noqa: E402
from ml.training.warmstart import check_against_onnx, load_folded  # noqa: E402

CHANNELS = (4, 8, 16)

# LiteUNet's EfficientNet convolutions hold their "same" padding as a submodule, so the BatchNorm after one
# is not the next module registered (the warm start refused the served weights until it counted past it).
ARCHITECTURES: dict[str, Callable[[], torch.nn.Module]] = {
    "slicknet": lambda: SlickNet(CHANNELS),
    "lite-unet": lambda: LiteUNet(pretrained=False),
}


def _trained_looking_model(
    build: Callable[[], torch.nn.Module] = ARCHITECTURES["slicknet"],
) -> torch.nn.Module:
    """A model whose BatchNorms hold non-trivial statistics, as a trained one's do."""
    torch.manual_seed(0)
    model = build()
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


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_unfolded_weights_match_the_onnx_model_in_eval_and_train_mode(tmp_path: Path, arch: str) -> None:
    onnx_path = tmp_path / "folded.onnx"
    _export(_trained_looking_model(ARCHITECTURES[arch]), onnx_path)
    calibration = torch.rand(16, 1, 64, 64)
    fresh = ARCHITECTURES[arch]()
    load_folded(fresh, onnx_path, calibration)

    assert check_against_onnx(fresh, onnx_path, torch.rand(3, 1, 64, 64)) < 1e-5
    # Train mode normalises by the batch's own statistics: on the calibration batch those are the ones the
    # BatchNorms were fitted to, so training starts from the exported network, not a rescaled one.
    fresh.train()
    with torch.no_grad():
        trained_mode = fresh(calibration)
        fresh.eval()
        eval_mode = fresh(calibration)
    # Each BatchNorm recomputes its statistics in float32, 57 of them deep in LiteUNet: 1.4e-4 apart at most.
    assert torch.allclose(trained_mode, eval_mode, atol=3e-4)


def test_a_model_of_another_shape_is_refused(tmp_path: Path) -> None:
    onnx_path = tmp_path / "folded.onnx"
    _export(_trained_looking_model(), onnx_path)
    with pytest.raises(ValueError, match=r"shape mismatch|convolutions"):
        load_folded(SlickNet((4, 8, 32)), onnx_path, torch.rand(2, 1, 64, 64))
