"""The 2x upscaler: a small residual conv net with pixel shuffle (ESPCN/EDSR-style), 64x64 -> 128x128.

It predicts the detail a bilinear upsample lacks: ``output = bilinear_2x(image) + shuffle(body(image))``, so an
untrained network already upsamples, and all the convolutions run at the input's resolution (the cheap side).
Values in and out are RGB in [-1, 1], (B, 3, H, W) -> (B, 3, 2H, 2W). Fully convolutional: any H, W works.
"""
from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F


class ResidualBlock(nn.Module):
    """conv-ReLU-conv plus the input (EDSR's block: no normalisation, which costs time and blurs colour)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class Upscaler(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, channels: int = 32, num_blocks: int = 2, factor: int = 2):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(num_blocks)))
        self.tail = nn.Conv2d(channels, 3 * factor * factor, 3, padding=1)
        self.shuffle = nn.PixelShuffle(factor)
        nn.init.zeros_(self.tail.weight)  # start as the plain bilinear upsample
        nn.init.zeros_(self.tail.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 3, factor*H, factor*W), not clamped (the caller clamps to pixels)."""
        base = F.interpolate(images, scale_factor=self.config.factor, mode="bilinear", align_corners=False)
        features = self.head(images)
        detail = self.shuffle(self.tail(self.blocks(features) + features))  # (B, 3, fH, fW)
        return base + detail


class PatchDiscriminator(ModelMixin, ConfigMixin):
    """A small PatchGAN critic (pix2pix): one real/fake score per ~22x22 patch of a 128x128 image. Training only."""

    @register_to_config
    def __init__(self, channels: tuple = (16, 32, 64)):
        super().__init__()
        layers, previous = [], 3
        for index, channel in enumerate(channels):
            layers += [nn.utils.spectral_norm(nn.Conv2d(previous, channel, 4, stride=2 if index < 2 else 1,
                                                        padding=1)), nn.LeakyReLU(0.2)]
            previous = channel
        layers.append(nn.Conv2d(previous, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)  # (B, 1, H/4, W/4) patch scores
