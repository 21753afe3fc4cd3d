"""Prune an embedded model's channels, then recover by distillation from the unpruned model.

``prune-unet``: the latent teacher's UNet cut to ``accel.prune.PRUNED_UNET_CHANNELS``, fine-tuned on its own diffusion
loss (v-prediction, min-SNR) plus the unpruned UNet's prediction on the same noisy latents (output-level knowledge
distillation, as BK-SDM recovers its block-pruned Stable Diffusion: Kim et al., 2023). Written as a UNet folder that
``genimg.load("latent", pruned=True)`` puts in the teacher's pipeline.
``prune-gan``: the GAN generator cut to ``accel.prune.PRUNED_GAN_CHANNELS``, fine-tuned to draw what the unpruned
generator draws for the same noise and caption (L1 + MSE).
``python -m genimg train prune-unet --seconds 2700`` / ``python -m genimg train prune-gan --seconds 1200``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from torch.nn import functional as F

from genimg.accel.prune import parameter_count, prune_generator, prune_unet
from genimg.models.gan import TextConditionalGenerator
from genimg.models.latent import new_training_scheduler
from genimg.train.common import (
    TrainConfig, data_generator, load_training_data, make_accelerator, save_half, tracked_ema, train_loop,
    write_card,
)
from genimg.train.latent import DatasetLatents, min_snr_weights, noisy_batch

# A short run: the average of the last few hundred steps, not the 0.999 of a from-scratch run.
EMA_DECAY = 0.995
DISTILL_WEIGHT = 1.0


def train_unet(config: TrainConfig) -> dict:
    accelerator = make_accelerator(config)
    dataset, images, bank = load_training_data(config, accelerator.device)
    teacher_folder = Path(config.teacher)
    dataset_latents = DatasetLatents(teacher_folder, images)
    scheduler = new_training_scheduler()
    teacher = UNet2DConditionModel.from_pretrained(teacher_folder / "unet", torch_dtype=torch.float32)
    student = prune_unet(teacher).train()
    teacher = teacher.to(accelerator.device).eval().requires_grad_(False)
    ema = tracked_ema(accelerator, student, EMA_DECAY)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate, weight_decay=1e-2)
    student, optimizer = accelerator.prepare(student, optimizer)

    def step(index: int) -> dict:
        latents, noise, timesteps, noisy, context = noisy_batch(config, index, bank, len(dataset), dataset_latents,
                                                                scheduler)
        with torch.no_grad():
            teacher_prediction = teacher(noisy, timesteps, context).sample
        prediction = student(noisy, timesteps, context).sample.float()
        weights = min_snr_weights(scheduler, timesteps)
        task = (F.mse_loss(prediction, scheduler.get_velocity(latents, noise, timesteps), reduction="none")
                .mean(dim=(1, 2, 3)) * weights).mean()
        distill = (F.mse_loss(prediction, teacher_prediction, reduction="none").mean(dim=(1, 2, 3)) * weights).mean()
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(task + DISTILL_WEIGHT * distill)
        accelerator.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        ema.update_parameters(accelerator.unwrap_model(student))
        return {"task": task.item(), "distill": distill.item()}

    summary = train_loop(accelerator, config, step, "prune_unet")
    if accelerator.is_main_process:
        out = Path(config.out_dir)
        save_half(ema.module, out / "unet")
        shutil.copytree(teacher_folder / "scheduler", out / "scheduler", dirs_exist_ok=True)
        summary["parameters"] = {"unpruned": parameter_count(teacher), "pruned": parameter_count(ema.module)}
        write_card(out, "genimg latent diffusion, channel-pruned UNet", summary,
                   f"The teacher's UNet ({teacher_folder}) with block widths {teacher.config.block_out_channels} -> "
                   f"{ema.module.config.block_out_channels} (genimg.accel.prune, torch-pruning), then fine-tuned on "
                   f"the diffusion loss plus {DISTILL_WEIGHT} x the teacher's prediction (output distillation); EMA "
                   f"{EMA_DECAY}. Uses the teacher's autoencoder, tokenizer and scheduler: genimg.load('latent', "
                   "pruned=True).")
    return summary


def train_gan(config: TrainConfig) -> dict:
    accelerator = make_accelerator(config)
    dataset, _, bank = load_training_data(config, accelerator.device)
    teacher_folder = Path(config.teacher)
    teacher = TextConditionalGenerator.from_pretrained(teacher_folder, torch_dtype=torch.float32)
    student = prune_generator(teacher).train()
    teacher = teacher.to(accelerator.device).eval().requires_grad_(False)
    ema = tracked_ema(accelerator, student, EMA_DECAY)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.learning_rate, betas=(0.5, 0.99))
    student, optimizer = accelerator.prepare(student, optimizer)
    z_dim = teacher.config.z_dim

    def step(index: int) -> dict:
        emoji, caption = bank.sample(config.batch_size, len(dataset), data_generator(config, index))
        text = bank.pooled[caption].float()
        noise = torch.randn(len(emoji), z_dim, device=accelerator.device)
        with torch.no_grad():
            target = teacher(noise, text)
        drawn = student(noise, text)
        loss = (drawn - target).abs().mean() + F.mse_loss(drawn, target)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        ema.update_parameters(accelerator.unwrap_model(student))
        return {"distill": loss.item()}

    summary = train_loop(accelerator, config, step, "prune_gan")
    if accelerator.is_main_process:
        out = Path(config.out_dir)
        save_half(ema.module, out)
        summary["parameters"] = {"unpruned": parameter_count(teacher), "pruned": parameter_count(ema.module)}
        write_card(out, "genimg GAN generator, channel-pruned", summary,
                   f"The GAN generator ({teacher_folder}) with channels {tuple(teacher.config.channels)} -> "
                   f"{tuple(ema.module.config.channels)} (genimg.accel.prune), then fine-tuned to draw what the "
                   f"unpruned generator draws for the same noise and caption (L1 + MSE); EMA {EMA_DECAY}. "
                   "genimg.load('gan', pruned=True).")
    return summary
