"""Train the judge: a CLIP-style image encoder against frozen MiniLM sentence embeddings.

Images are degraded (noise, blur, colour shifts) so that the judge scores generated images, not only crisp glyphs.
``python -m genimg train judge``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from genimg.models.judge import Judge
from genimg.train.common import (
    TrainConfig, data_generator, load_training_data, make_accelerator, save_half, train_loop, write_card,
)


def degrade(images: torch.Tensor) -> torch.Tensor:
    """Random blur, noise, brightness and a small shift: the kinds of error generators make."""
    batch = len(images)
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    amount = torch.rand(batch, 1, 1, 1, device=images.device)
    images = images + amount * (blurred - images)
    images = images + 0.1 * torch.rand(batch, 1, 1, 1, device=images.device) * torch.randn_like(images)
    images = images * (1 + 0.1 * torch.randn(batch, 3, 1, 1, device=images.device))
    shift = [int(s) for s in torch.randint(-3, 4, (2,))]
    return torch.roll(images, shifts=shift, dims=(2, 3)).clamp(-1, 1)


def train(config: TrainConfig) -> dict:
    accelerator = make_accelerator(config)
    dataset, images, bank = load_training_data(config, accelerator.device)
    # Fine-tuning (on the compositional scenes, say) starts from a shipped judge; a fresh run from the architecture.
    judge = Judge.from_pretrained(config.init_from, torch_dtype=torch.float32) if config.init_from else Judge()
    optimizer = torch.optim.AdamW(judge.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    judge, optimizer = accelerator.prepare(judge, optimizer)

    def step(index: int) -> dict:
        rng = data_generator(config, index)
        emoji, caption = bank.sample(config.batch_size, len(dataset), rng)
        logits = judge(degrade(images[emoji]), bank.pooled[caption].float())
        labels = torch.arange(len(emoji), device=logits.device)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        return {"loss": loss.item(), "acc": (logits.argmax(1) == labels).float().mean().item()}

    summary = train_loop(accelerator, config, step, "judge")
    if accelerator.is_main_process:
        out = Path(config.out_dir)
        save_half(accelerator.unwrap_model(judge), out)
        write_card(out, "genimg judge (image-text prompt match)", summary,
                   "Symmetric InfoNCE between degraded emoji images and MiniLM sentence embeddings of their captions.")
    return summary
