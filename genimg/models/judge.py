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


def judge_feature_maps(judge: Judge, images: torch.Tensor, num_stages: int = 3) -> list[torch.Tensor]:
    """The judge's first ``num_stages`` conv stages' activations (after GroupNorm + SiLU) for images in [-1, 1] of
    any size: the convs are resolution-free, so a 128 px image gives maps at 64, 32 and 16 px."""
    features, layers = [], list(judge.image_encoder.convs)
    x = images
    for stage in range(num_stages):
        for layer in layers[3 * stage:3 * stage + 3]:  # Conv2d, GroupNorm, SiLU
            x = layer(x)
        features.append(x)
    return features


def perceptual_distance(judge: Judge, images: torch.Tensor, references: torch.Tensor,
                        num_stages: int = 3) -> torch.Tensor:
    """LPIPS-style distance (Zhang et al., 2018, without the learned channel weights) from the judge's features: per
    stage, unit-normalise each pixel's feature vector, take the squared difference summed over channels, average
    over space; sum over stages. (B,) for (B, 3, H, W) pairs in [-1, 1]; 0 for identical images."""
    distance = images.new_zeros(len(images))
    for ours, theirs in zip(judge_feature_maps(judge, images, num_stages),
                            judge_feature_maps(judge, references, num_stages)):
        ours, theirs = nn.functional.normalize(ours, dim=1), nn.functional.normalize(theirs, dim=1)
        distance = distance + (ours - theirs).pow(2).sum(1).mean(dim=(1, 2))
    return distance
