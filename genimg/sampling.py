"""The denoising loop shared by the latent backend, the benchmark and distillation: one readable screen."""
from __future__ import annotations

import inspect

import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, LCMScheduler,
                       SchedulerMixin)

from genimg.errors import InvalidRequest

SCHEDULERS = {
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "lcm": (LCMScheduler, {}),
}


def make_scheduler(name: str, config) -> SchedulerMixin:
    """A fresh scheduler (they keep per-run state, so every generation gets its own) from a saved config."""
    if name not in SCHEDULERS:
        raise InvalidRequest(f"Unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}.")
    cls, overrides = SCHEDULERS[name]
    # Keep only what this class takes, so switching scheduler families doesn't log a warning per generation.
    accepted = set(inspect.signature(cls.__init__).parameters)
    return cls.from_config({k: v for k, v in dict(config).items() if k in accepted}, **overrides)


@torch.inference_mode()
def denoise(unet, scheduler: SchedulerMixin, noise: torch.Tensor, context: torch.Tensor, steps: int,
            guidance: float = 1.0, empty_context: torch.Tensor | None = None,
            generator: torch.Generator | None = None, on_step=None) -> torch.Tensor:
    """Runs ``steps`` scheduler steps from ``noise`` with classifier-free guidance when ``guidance > 1``."""
    guided = guidance > 1.0 and empty_context is not None
    if guided:
        context = torch.cat([empty_context.expand_as(context), context])
    scheduler.set_timesteps(steps, device=noise.device)
    latents = noise * scheduler.init_noise_sigma
    for index, timestep in enumerate(scheduler.timesteps):
        model_input = scheduler.scale_model_input(torch.cat([latents] * 2) if guided else latents, timestep)
        prediction = unet(model_input, timestep, encoder_hidden_states=context, return_dict=False)[0]
        if guided:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance * (conditional - unconditional)
        latents = scheduler.step(prediction, timestep, latents, generator=generator, return_dict=False)[0]
        if on_step is not None:
            on_step(index + 1, len(scheduler.timesteps))
    return latents
