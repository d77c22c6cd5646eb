"""SlickNet: a compact U-Net with a stride-2 stem, sized for 2-core CPU training and serving.

The stem halves the resolution once, so the U-Net body runs at 128x128 for a 256x256 tile; the logits are
upsampled back to full size. Input normalisation and the sigmoid are part of the graph, so the exported
ONNX model maps grey levels in [0, 1] straight to oil probabilities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Approximate grey-level mean and spread of the training tiles, fixed so that exports are reproducible.
INPUT_MEAN = 0.33
INPUT_STD = 0.16
CHANNELS = (16, 32, 64, 128, 256)


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(conv_bn_relu(cin, cout, stride), conv_bn_relu(cout, cout))


class SlickNet(nn.Module):
    def __init__(self, channels: tuple[int, ...] = CHANNELS) -> None:
        super().__init__()
        self.stem = conv_bn_relu(1, channels[0], stride=2)
        self.encoders = nn.ModuleList()
        cin = channels[0]
        for k, c in enumerate(channels):
            self.encoders.append(DoubleConv(cin, c, stride=1 if k == 0 else 2))
            cin = c
        self.decoders = nn.ModuleList(
            DoubleConv(channels[k] + channels[k - 1], channels[k - 1])
            for k in range(len(channels) - 1, 0, -1)
        )
        self.head = nn.Conv2d(channels[0], 1, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem((x - INPUT_MEAN) / INPUT_STD)
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
        x = skips.pop()
        for dec in self.decoders:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], dim=1))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) grey levels in [0, 1] -> (N, 1, H, W) oil probability."""
        return torch.sigmoid(self.logits(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
