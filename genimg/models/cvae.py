"""Text-conditional VAE: encoder q(z | image, text) for training, decoder p(image | z, text) for inference."""
from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from genimg.models.blocks import ConditionalDecoder, ImageEncoder


class TextConditionalVAE(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, z_dim: int = 32, text_dim: int = 384, channels: tuple = (256, 128, 64, 32, 16)):
        super().__init__()
        self.encoder = ImageEncoder(256)
        self.to_posterior = nn.Linear(256 + text_dim, 2 * z_dim)
        self.decoder = ConditionalDecoder(z_dim, text_dim, tuple(channels))

    def encode(self, images: torch.Tensor, text_embedding: torch.Tensor):
        features = nn.functional.silu(self.encoder(images))
        mean, log_var = self.to_posterior(torch.cat([features, text_embedding], dim=1)).chunk(2, dim=1)
        return mean, log_var.clamp(-10, 10)

    def decode(self, z: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        return self.decoder(z, text_embedding)

    def forward(self, images: torch.Tensor, text_embedding: torch.Tensor):
        mean, log_var = self.encode(images, text_embedding)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        return self.decode(z, text_embedding), mean, log_var
