"""Warm starts: a training run that begins from the committed ONNX weights instead of random ones.

The checkpoints of an earlier run may not survive to the next session, but the exported model always does.
Its graph has every BatchNorm folded into the convolution before it (W' = W * gamma / sd, b' = beta -
mean * gamma / sd), so the torch model gets the folded weights and BatchNorms that reproduce them exactly in
eval mode *and* in train mode: each one is calibrated on a batch of training tiles to the mean m and spread s
of the activations it sees (running mean m, running variance s^2 - eps, gamma = s, beta = m + b'), so that
normalising by the batch's own statistics gives back what the folded network computed.
`check_against_onnx` proves the eval-mode half.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn


def _onnx_convs(path: Path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(weight, bias) of every Conv node, in graph order."""
    graph = onnx.load(str(path)).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    convs = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        bias = weights[node.input[2]] if len(node.input) > 2 else None
        convs.append((weights[node.input[1]], bias))
    return convs


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Every convolution in execution order (SlickNet and LiteUNet register in that order), and the
    BatchNorm after it. A convolution's own submodules come first (EfficientNet's static "same" padding is
    one), so the module after the convolution is counted past them.
    """
    modules = list(model.modules())
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]] = []
    for i, module in enumerate(modules):
        if isinstance(module, nn.Conv2d):
            j = i + len(list(module.modules()))
            after = modules[j] if j < len(modules) else None
            pairs.append((module, after if isinstance(after, nn.BatchNorm2d) else None))
    return pairs


@torch.no_grad()
def load_folded(model: nn.Module, onnx_path: Path, calibration: torch.Tensor) -> None:
    """Put the ONNX model's folded weights into `model`, BatchNorms calibrated on `calibration` (N,1,H,W)."""
    convs = _onnx_convs(onnx_path)
    pairs = _conv_bn_pairs(model)
    if len(convs) != len(pairs):
        raise ValueError(f"{onnx_path}: {len(convs)} convolutions, the torch model has {len(pairs)}")
    inputs: dict[nn.BatchNorm2d, torch.Tensor] = {}
    hooks = []
    for (conv, bn), (weight, bias) in zip(pairs, convs, strict=True):
        if tuple(conv.weight.shape) != weight.shape:
            raise ValueError(f"shape mismatch: torch {tuple(conv.weight.shape)}, ONNX {weight.shape}")
        conv.weight.copy_(torch.from_numpy(np.array(weight)))
        folded_bias = torch.from_numpy(np.array(bias)) if bias is not None else torch.zeros(weight.shape[0])
        if bn is None:
            if conv.bias is None:
                raise ValueError("a convolution without BatchNorm must have a bias")
            conv.bias.copy_(folded_bias)
            continue
        # Identity BatchNorm first (eval mode: x + b'), so the calibration pass sees the folded network.
        assert bn.running_mean is not None and bn.running_var is not None  # track_running_stats
        bn.running_mean.zero_()
        bn.running_var.fill_(1 - bn.eps)
        bn.weight.fill_(1)
        bn.bias.copy_(folded_bias)
        hooks.append(bn.register_forward_pre_hook(lambda m, args: inputs.__setitem__(m, args[0].detach())))
    was_training = model.training
    model.eval()
    model(calibration)
    for hook in hooks:
        hook.remove()
    for bn, x in inputs.items():
        assert bn.running_mean is not None and bn.running_var is not None  # track_running_stats
        mean = x.mean(dim=(0, 2, 3))
        std = x.var(dim=(0, 2, 3), unbiased=False).clamp_min(bn.eps * 2).sqrt()
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(std**2 - bn.eps)
        bn.weight.copy_(std)
        bn.bias.add_(mean)
    model.train(was_training)


def check_against_onnx(model: nn.Module, onnx_path: Path, x: torch.Tensor) -> float:
    """Largest absolute difference of probabilities between the torch model (eval) and the ONNX file."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    expected = session.run(None, {name: x.numpy().astype(np.float32)})[0]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        got = model(x).numpy()
    model.train(was_training)
    return float(np.abs(got - expected).max())
