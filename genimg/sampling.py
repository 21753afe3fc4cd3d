"""The denoising loop shared by the latent backend, the benchmark and distillation: one readable screen."""
from __future__ import annotations

import inspect
import math

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


def guided_step_count(steps: int, guidance_cutoff: float | None) -> int:
    """How many leading steps get classifier-free guidance: all of them, or ceil(cutoff x steps)."""
    return steps if guidance_cutoff is None else math.ceil(guidance_cutoff * steps)


@torch.inference_mode()
def denoise(unet, scheduler: SchedulerMixin, noise: torch.Tensor, context: torch.Tensor, steps: int,
            guidance: float = 1.0, empty_context: torch.Tensor | None = None,
            generator: torch.Generator | None = None, on_step=None,
            guidance_cutoff: float | None = None, unet_kwargs: dict | None = None,
            guided_unet_kwargs: dict | None = None, start_latents: torch.Tensor | None = None,
            start_step: int = 0) -> torch.Tensor:
    """Runs ``steps`` scheduler steps from ``noise`` with classifier-free guidance when ``guidance > 1``, on the
    first ``guidance_cutoff`` fraction of the steps (all of them when None); the rest run the conditional pass alone.
    ``unet_kwargs`` go to every UNet call as they are (an LCM UNet's ``timestep_cond``, never doubled for guidance);
    ``guided_unet_kwargs``, where given, replace them on guided steps (SDXL's added conditioning, unconditional half
    first).

    Image to image (SDEdit, Meng et al. 2021): with ``start_latents`` (an encoded image), the schedule of ``steps``
    is entered at index ``start_step``: the image is noised to that step's timestep (``scheduler.add_noise``) and
    only the remaining ``steps - start_step`` steps run."""
    unet_kwargs = unet_kwargs or {}
    guided_unet_kwargs = unet_kwargs if guided_unet_kwargs is None else guided_unet_kwargs
    # Not every scheduler draws noise (PNDM, SD 1.5's default, takes no generator), as diffusers' pipelines check too.
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    scheduler.set_timesteps(steps, device=noise.device)
    timesteps = scheduler.timesteps[start_step * scheduler.order:]
    if hasattr(scheduler, "set_begin_index"):  # multistep schedulers count from where the schedule is entered
        scheduler.set_begin_index(start_step * scheduler.order)
    guided_steps = guided_step_count(len(timesteps), guidance_cutoff)
    if guidance <= 1.0 or empty_context is None:
        guided_steps = 0
    both_contexts = torch.cat([empty_context.expand_as(context), context]) if guided_steps else None
    if start_latents is None:
        latents = noise * scheduler.init_noise_sigma
    else:
        latents = scheduler.add_noise(start_latents, noise, timesteps[:1])
    for index, timestep in enumerate(timesteps):
        guided = index < guided_steps
        model_input = scheduler.scale_model_input(torch.cat([latents] * 2) if guided else latents, timestep)
        prediction = unet(model_input, timestep, encoder_hidden_states=both_contexts if guided else context,
                          return_dict=False, **(guided_unet_kwargs if guided else unet_kwargs))[0]
        if guided:
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance * (conditional - unconditional)
        latents = scheduler.step(prediction, timestep, latents, return_dict=False, **step_kwargs)[0]
        if on_step is not None:
            on_step(index + 1, len(timesteps))
    return latents


def strength_schedule(steps: int, strength: float, max_steps: int) -> tuple[int, int]:
    """Image to image: a schedule of ``total`` steps entered at ``start_step``, so that ``steps`` steps run from the
    image noised to ``strength`` (1 = pure noise). Few-step models keep their step count (1 LCM step at strength 0.5
    runs the second step of a 2-step schedule) where diffusers would run ``steps x strength`` of them; ``total`` is
    at most ``max_steps``, so a tiny strength is raised to ``steps / max_steps``."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise InvalidRequest(f"strength must be a number in (0, 1] (how much of the image is redrawn), got "
                             f"{strength!r}.")
    total = max(steps, min(max_steps, math.ceil(steps / strength - 1e-9)))
    return total, total - steps
