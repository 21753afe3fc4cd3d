"""Calibration inputs for static int8: real calls of each module, recorded from the backend's own generation path.

The prompts are emoji names from the embedded concept index (the captions the models were trained on), spread over
the whole list; the noise is seeded, so the same weights always calibrate on the same inputs (the OpenVINO disk cache
keys on ``CALIBRATION_ID``).
"""
from __future__ import annotations

import torch

from genimg.accel.quantize import record_calls
from genimg.backends.base import seeded_noise, step_generators
from genimg.concepts import ConceptIndex
from genimg.sampling import denoise, make_scheduler

CALIBRATION_BATCHES = 2
CALIBRATION_BATCH_SIZE = 8
CALIBRATION_ID = f"emoji-names:{CALIBRATION_BATCHES}x{CALIBRATION_BATCH_SIZE}:seeds0-1:v1"


def calibration_prompts(count: int = CALIBRATION_BATCHES * CALIBRATION_BATCH_SIZE) -> list[str]:
    """``count`` emoji names spread evenly over the concept index."""
    names = ConceptIndex.load().names
    return [names[i * len(names) // count] for i in range(count)]


def _prompt_batches():
    prompts = calibration_prompts()
    for seed in range(CALIBRATION_BATCHES):
        yield seed, prompts[seed * CALIBRATION_BATCH_SIZE:(seed + 1) * CALIBRATION_BATCH_SIZE]


@torch.inference_mode()
def latent_calls(generator, unet: torch.nn.Module, decode: torch.nn.Module) -> tuple[list, list]:
    """(UNet calls, decoder calls) of ``generator``'s sampling loop at its default steps and guidance, run with the
    plain torch modules ``unet`` and ``decode`` and a scheduler of its own (the generator's may be mid-run)."""
    unet_calls, decoder_calls = [], []
    scheduler = make_scheduler(generator.scheduler_name, generator.scheduler_config)
    for seed, prompts in _prompt_batches():
        context = generator.text.encode(prompts).tokens
        noise = seeded_noise((len(prompts), *generator.latent_shape), seed, generator.device, generator.dtype)
        empty = generator.text.encode([""]).tokens

        def sample():
            return denoise(unet, scheduler, noise, context, generator.default_steps, generator.default_guidance,
                           empty, step_generators(seed), None, generator.options.guidance_cutoff)

        latents = []
        unet_calls += record_calls(unet, lambda: latents.append(sample()))
        decoder_calls.append(((latents[0] / generator.latent_scale,), {}))
    return unet_calls, decoder_calls


@torch.inference_mode()
def pooled_calls(generator, z_dim: int) -> list:
    """Calls of a one-pass generator (GAN, VAE decoder): seeded noise and the prompts' pooled sentence embeddings."""
    calls = []
    for seed, prompts in _prompt_batches():
        noise = seeded_noise((len(prompts), z_dim), seed, generator.device, generator.dtype)
        calls.append(((noise, generator.text.encode(prompts).pooled), {}))
    return calls
