"""Prompt-match quality: the embedded judge scores how well an image shows its prompt (0-100)."""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genimg.assets import ASSETS
from genimg.models.judge import Judge
from genimg.scene import CANVAS
from genimg.threads import LOAD_LOCK
from genimg.text import TextEncoder

JUDGE_SIZE = 64


def pil_to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """PIL images (any size) -> (B, 3, 64, 64) in [-1, 1], as the judge was trained."""
    arrays = [np.asarray(image.convert("RGB").resize((JUDGE_SIZE, JUDGE_SIZE), Image.BILINEAR)) for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class PromptJudge:
    """Cosine similarity between the judge's image embedding and the prompt's, mapped to a 0-100 score."""

    def __init__(self, folder: str | Path = ASSETS / "judge", text: TextEncoder | None = None):
        self.model = Judge.from_pretrained(folder, torch_dtype=torch.float32).eval()
        self.text = text or TextEncoder()
        self.lock = threading.Lock()

    @torch.inference_mode()
    def text_embeddings(self, prompts: list[str]) -> torch.Tensor:
        return self.model.embed_texts(self.text.encode(prompts).pooled.float())

    @torch.inference_mode()
    def image_embeddings(self, images: list[Image.Image]) -> torch.Tensor:
        return self.model.embed_images(pil_to_tensor(images))

    def score(self, images: list[Image.Image], prompt: str) -> list[float]:
        """One score per image: 100 * max(0, cosine similarity with the prompt)."""
        if not images:
            return []
        with self.lock:
            similarity = self.image_embeddings(images) @ self.text_embeddings([prompt]).T
        return [round(100.0 * max(0.0, float(s)), 1) for s in similarity[:, 0]]

    def score_layout(self, images: list[Image.Image], layout: dict, canvas: int = CANVAS) -> list[float]:
        """A scene drawn by the layout (``result.info["layout"]``): per image, the mean score of each object's slot
        against what it was drawn as. The judge learned single emoji, so a whole scene against its sentence is out of
        its world (it scores a right scene near 0); each slot is one emoji. Slots are in the models' ``canvas`` pixels
        (``genimg.scene.layout``), scaled to each image's size (an upscaled image is 2x)."""
        if not images:
            return []
        crops = []
        for image, slots in zip(images, layout["slots"]):
            scale = image.width / canvas
            crops += [image.crop((round(x * scale), round(y * scale), round((x + size) * scale),
                                  round((y + size) * scale))) for x, y, size in slots]
        per_object = len(layout["objects"])
        with self.lock:
            similarity = (self.image_embeddings(crops) * self.text_embeddings(layout["objects"] * len(images))).sum(-1)
        scores = [100.0 * max(0.0, float(s)) for s in similarity]
        return [round(sum(scores[i:i + per_object]) / per_object, 1) for i in range(0, len(scores), per_object)]


@lru_cache(maxsize=1)
def default_judge() -> PromptJudge:
    with LOAD_LOCK:  # from_pretrained is not safe next to another load (see threads.LOAD_LOCK)
        return PromptJudge()
