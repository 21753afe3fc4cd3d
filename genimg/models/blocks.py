"""Building blocks shared by the small text-conditional models (GAN generator, VAE decoder, judge)."""
from __future__ import annotations

import torch
from torch import nn


class FiLMUpBlock(nn.Module):
    """Upsample x2, conv, then scale-and-shift each channel from the conditioning vector."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, out_channels // 4), out_channels, affine=False)
        self.film = nn.Linear(cond_dim, 2 * out_channels)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        h = nn.functional.silu(self.conv1(x))
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.norm(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(nn.functional.silu(h))


class ConditionalDecoder(nn.Module):
    """(noise or latent vector, text embedding) -> 64x64 RGB in [-1, 1]: 4x4 seed grown by four FiLM up blocks."""

    # OpenVINO 2026.4's CPU plugin segfaults in compile_model on a GroupNorm without affine followed by a per-sample
    # scale and shift (FiLMUpBlock) at static shapes; with a dynamic batch it compiles (see genimg.accel.openvino).
    openvino_dynamic_batch = True

    def __init__(self, z_dim: int, text_dim: int, channels: tuple = (256, 128, 64, 32, 16)):
        super().__init__()
        cond_dim = z_dim + text_dim
        self.channels = channels
        self.seed = nn.Linear(cond_dim, channels[0] * 16)
        self.blocks = nn.ModuleList(FiLMUpBlock(c_in, c_out, cond_dim) for c_in, c_out in zip(channels, channels[1:]))
        self.to_rgb = nn.Conv2d(channels[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([z, text.to(z.dtype)], dim=1)
        x = self.seed(cond).view(-1, self.channels[0], 4, 4)
        for block in self.blocks:
            x = block(x, cond)
        return torch.tanh(self.to_rgb(nn.functional.silu(x)))


class ImageEncoder(nn.Module):
    """64x64 RGB in [-1, 1] -> feature vector: strided convs down to 4x4, then a linear layer."""

    def __init__(self, out_dim: int, channels: tuple = (32, 64, 128, 256), in_channels: int = 3):
        super().__init__()
        layers, previous = [], in_channels
        for channel in channels:
            layers += [nn.Conv2d(previous, channel, 4, stride=2, padding=1), nn.GroupNorm(8, channel), nn.SiLU()]
            previous = channel
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(previous * 16, out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(images).flatten(1))
