"""The judge: an image encoder trained against frozen MiniLM sentence embeddings (CLIP-style), for prompt match."""
from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from genimg.models.blocks import ImageEncoder


class Judge(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, text_dim: int = 384, joint_dim: int = 256):
        super().__init__()
        self.image_encoder = ImageEncoder(joint_dim, channels=(32, 64, 128, 256))
        self.text_projection = nn.Linear(text_dim, joint_dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1/0.07), as CLIP starts

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.image_encoder(images), dim=-1)

    def embed_texts(self, text_embedding: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text_projection(text_embedding), dim=-1)

    def forward(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """Pairwise logits (images x texts)."""
        return self.logit_scale.exp() * self.embed_images(images) @ self.embed_texts(text_embedding).T

    def score(self, images: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each image with its own text, in [-1, 1]."""
        return (self.embed_images(images) * self.embed_texts(text_embedding)).sum(-1)
