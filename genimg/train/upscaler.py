"""Train the 2x upscaler: L1, a perceptual loss from the judge's features, then a small adversarial term.

Pairs (see ``genimg.train.upscaler_data``): degraded 64 px downscales of the 128 px glyphs, and the embedded
generators' own 64 px drawings with their emoji's 128 px glyph (``GENERATOR_FRACTION`` of each batch).
Losses, as in ESRGAN/Real-ESRGAN but small:
- L1 to the 128 px glyph (what PSNR rewards);
- a perceptual loss (``PERCEPTUAL_WEIGHT``): the LPIPS-style distance between the judge's first three conv stages'
  features of the output and of the glyph (``genimg.models.judge.perceptual_distance``; the judge is frozen);
- after ``WARMUP_FRACTION`` of the steps (or of the time budget, whichever ends first) on L1 + perceptual alone,
  a hinge adversarial loss (``ADVERSARIAL_WEIGHT``) from a small spectral-norm patch discriminator, which pushes
  edges to look drawn rather than interpolated; a small weight, so that it sharpens without painting texture.
The shipped weights are an exponential moving average of the trained ones. ``python -m genimg train upscaler``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from genimg.assets import ASSETS
from genimg.models.judge import Judge, perceptual_distance
from genimg.models.upscaler import PatchDiscriminator, Upscaler
from genimg.train.common import TrainConfig, data_generator, make_accelerator, save_half, tracked_ema, train_loop
from genimg.train.data import load_dataset
from genimg.train.upscaler_data import (BLUR_SHARE, HELD_OUT_EVERY, MAX_BLUR_SIGMA, MAX_COLOUR_SHIFT, MAX_NOISE,
                                        NOISE_SHARE, degraded_pairs, generator_pairs, held_out_indices, to_tensor,
                                        training_indices)

PERCEPTUAL_WEIGHT = 0.05
ADVERSARIAL_WEIGHT = 2e-3
WARMUP_FRACTION = 0.4
GENERATOR_FRACTION = 0.2
EMA_DECAY = 0.995
CROP = 48  # input crop (target: 96): 56% of the pixels per step, and the emoji's edges fall at every position


def frozen_judge(folder=None) -> Judge:
    judge = Judge.from_pretrained(folder or ASSETS / "judge", torch_dtype=torch.float32).eval()
    judge.requires_grad_(False)
    return judge


class PairSampler:
    """Draws a step's (inputs (B, 3, 64, 64), targets (B, 3, 128, 128)) batch, both in [-1, 1]."""

    def __init__(self, config: TrainConfig):
        self.glyphs = load_dataset(config.dataset, size=128)
        self.train = training_indices(len(self.glyphs))
        self.small = load_dataset(config.dataset)  # the same glyphs at 64 px, as the generators learned them
        self.drawings, self.drawn_emoji = generator_pairs(self.small, config.dataset)
        self.batch_size = config.batch_size

    def sample(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        drawn = int(round(GENERATOR_FRACTION * self.batch_size)) if len(self.drawings) else 0
        picks = self.train[torch.randint(len(self.train), (self.batch_size - drawn,), generator=generator).numpy()]
        inputs, targets = degraded_pairs(to_tensor(self.glyphs.images[picks]), generator,
                                         to_tensor(self.small.images[picks]))
        if drawn:
            rows = torch.randint(len(self.drawings), (drawn,), generator=generator).numpy()
            flip = torch.rand(drawn, generator=generator) < 0.5  # the same mirror on input and target
            drawings = to_tensor(self.drawings[rows])
            glyphs = to_tensor(self.glyphs.images[self.drawn_emoji[rows]])
            drawings = torch.where(flip[:, None, None, None], drawings.flip(3), drawings)
            glyphs = torch.where(flip[:, None, None, None], glyphs.flip(3), glyphs)
            inputs, targets = torch.cat([inputs, drawings]), torch.cat([targets, glyphs])
        top, left = (int(v) for v in torch.randint(inputs.shape[-1] - CROP + 1, (2,), generator=generator))
        return (inputs[..., top:top + CROP, left:left + CROP],
                targets[..., 2 * top:2 * (top + CROP), 2 * left:2 * (left + CROP)])


def train(config: TrainConfig) -> dict:
    accelerator = make_accelerator(config)
    sampler = PairSampler(config)
    judge = frozen_judge().to(accelerator.device)
    model = (Upscaler.from_pretrained(config.init_from, torch_dtype=torch.float32) if config.init_from
             else Upscaler())
    critic = PatchDiscriminator()
    ema = tracked_ema(accelerator, model, EMA_DECAY)
    opt_g = torch.optim.Adam(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(critic.parameters(), lr=config.learning_rate, betas=(0.5, 0.99))
    model, critic, opt_g, opt_d = accelerator.prepare(model, critic, opt_g, opt_d)
    warmup = {"steps": int(WARMUP_FRACTION * config.steps), "until_s": time.perf_counter() + WARMUP_FRACTION * (
        config.seconds or float("inf")), "adversarial_from": None}

    def adversarial_phase(index: int) -> bool:
        if warmup["adversarial_from"] is None and (index >= warmup["steps"] or time.perf_counter() > warmup["until_s"]):
            warmup["adversarial_from"] = index
        return warmup["adversarial_from"] is not None

    def step(index: int) -> dict:
        inputs, targets = (t.to(accelerator.device) for t in sampler.sample(data_generator(config, index)))
        output = model(inputs)
        l1 = (output - targets).abs().mean()
        perceptual = perceptual_distance(judge, output, targets).mean()
        loss, logs = l1 + PERCEPTUAL_WEIGHT * perceptual, {"l1": l1.item(), "perceptual": perceptual.item()}
        if adversarial_phase(index):
            d_loss = F.relu(1 - critic(targets)).mean() + F.relu(1 + critic(output.detach())).mean()
            opt_d.zero_grad(set_to_none=True)
            accelerator.backward(d_loss)
            opt_d.step()
            adversarial = -critic(output).mean()
            loss = loss + ADVERSARIAL_WEIGHT * adversarial
            logs.update(d=d_loss.item(), g_adv=adversarial.item())
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        opt_g.step()
        ema.update_parameters(accelerator.unwrap_model(model))
        return logs

    summary = train_loop(accelerator, config, step, "upscaler")
    summary["pairs"] = {"glyphs": len(sampler.train), "held_out": len(held_out_indices(len(sampler.glyphs))),
                        "generator_drawings": int(len(sampler.drawings))}
    summary["adversarial_from_step"] = warmup["adversarial_from"]
    if accelerator.is_main_process:
        out = Path(config.out_dir)
        save_half(ema.module, out)
        write_upscaler_card(out, summary)
    return summary


def write_upscaler_card(folder: Path, summary: dict) -> None:
    """The model card: data, losses, steps and time (the evaluation's figures are added from
    ``python -m genimg evaluate --upscaler``, see assets/eval/upscaler.md)."""
    pairs, config = summary["pairs"], summary["config"]
    parameters = sum(p.numel() for p in Upscaler.from_pretrained(folder).parameters())
    budget = f" --seconds {config['seconds']:g}" if config["seconds"] else ""
    text = f"""# genimg upscaler (2x, 64 -> 128 px)

A small residual conv net with pixel shuffle ({parameters:,} parameters, fp16 safetensors):
`output = bilinear_2x(image) + pixel_shuffle(convs(image))`, every convolution at the input's 64x64. It ends any
embedded backend's generation with `genimg.load(..., upscale=2)` (stage `upscale`) and serves `genimg.upscale(image)`.

## Data
- Targets: the {pairs["glyphs"]} training emoji of Noto Color Emoji rendered at 128x128 (the font's colour bitmaps are
  136x128), `genimg.train.data.load_dataset(size=128)`; {pairs["held_out"]} emoji (every
  {HELD_OUT_EVERY}th) are held out for the evaluation.
- Inputs, 64x64: half from the dataset's own 64 px renders, half the 128 px glyph downscaled (area, bilinear or
  bicubic); then at random Gaussian blur (sigma up to {MAX_BLUR_SIGMA} px, {BLUR_SHARE:.0%} of inputs) and noise (up to
  {MAX_NOISE} in [-1, 1], {NOISE_SHARE:.0%}); a colour shift (gain and offset up to {MAX_COLOUR_SHIFT}) on input and
  target alike, half the time.
- {GENERATOR_FRACTION:.0%} of each batch: the embedded generators' own 64 px drawings (gan, vae, latent-lcm 1 step;
  {pairs["generator_drawings"]} drawings, those nearest their glyph) paired with their emoji's 128 px glyph.
- Random {CROP}x{CROP} input crops ({2 * CROP}x{2 * CROP} targets), mirrored drawings.

## Losses
- L1 to the glyph;
- {PERCEPTUAL_WEIGHT} x a perceptual loss: the LPIPS-style distance of the judge's first three conv stages
  (`genimg.models.judge.perceptual_distance`; the judge, assets/models/judge, is frozen; nothing is downloaded);
- from step {summary["adversarial_from_step"]} on (after a warm-up of L1 + perceptual alone),
  {ADVERSARIAL_WEIGHT} x a hinge adversarial loss from a small spectral-norm patch discriminator
  (`PatchDiscriminator`, not shipped).
- Adam, learning rate {config["learning_rate"]}, batch {config["batch_size"]}; the shipped weights are an EMA
  ({EMA_DECAY}) of the trained ones.

## Steps and time
{summary["steps"]} steps in {summary["seconds"]:.0f} s (wall clock) on {summary["hardware"]},
`python -m genimg train upscaler --steps {config["steps"]}{budget}`. Last losses:
`{json.dumps({k: round(v, 4) for k, v in summary["last"].items()})}`.
"""
    (folder / "README.md").write_text(text)
