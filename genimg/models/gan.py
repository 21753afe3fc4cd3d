"""Text-conditional GAN: a generator that draws a 64x64 image in one forward pass, and its projection critic."""
from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from genimg.models.blocks import ConditionalDecoder, ImageEncoder


class TextConditionalGenerator(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, z_dim: int = 64, text_dim: int = 384, channels: tuple = (256, 128, 64, 32, 16)):
        super().__init__()
        self.decoder = ConditionalDecoder(z_dim, text_dim, tuple(channels))

    def forward(self, noise: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        return self.decoder(noise, text_embedding)


class ProjectionDiscriminator(ModelMixin, ConfigMixin):
    """Real/fake score plus the inner product of image features with the text embedding (Miyato & Koyama, 2018)."""

    @register_to_config
    def __init__(self, text_dim: int = 384, feature_dim: int = 256):
        super().__init__()
        self.encoder = ImageEncoder(feature_dim)
        self.unconditional = nn.Linear(feature_dim, 1)
        self.text_projection = nn.Linear(text_dim, feature_dim)

    def forward(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        features = nn.functional.silu(self.encoder(images))
        projection = (features * self.text_projection(text_embedding)).sum(dim=1, keepdim=True)
        return (self.unconditional(features) + projection).squeeze(1)
