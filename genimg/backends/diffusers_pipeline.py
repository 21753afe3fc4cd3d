"""Any diffusers text-to-image pipeline (hub id or local folder) behind the same interface and timings.

Text encoding is timed with hooks on the pipeline's text encoder(s), so the breakdown works for SD 1.5, SD-Turbo,
SDXL(-Turbo) and LCM pipelines alike; denoising is the rest of the pipeline call; decoding is timed on its own.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from genimg.backends.base import BaseGenerator, to_pil
from genimg.errors import ModelLoadError
from genimg.options import Request, SpeedOptions
from genimg.timing import Generation, StageTimer, peak_memory_bytes, reset_peak_memory, synchronize


def load_pipeline(model: str, dtype: torch.dtype, **components):
    from diffusers import DiffusionPipeline

    local = Path(model).expanduser()
    source = str(local) if local.exists() else model
    if not local.exists() and ("/" not in model.strip("/") or model.startswith((".", "/", "~"))):
        raise ModelLoadError(f"{model!r} is neither a local folder nor a hub id of the form 'owner/name'.")
    try:
        return DiffusionPipeline.from_pretrained(source, torch_dtype=dtype, **components)
    except Exception as error:  # diffusers raises many types (OSError, EnvironmentError, ValueError...)
        raise ModelLoadError(f"Could not load the diffusers pipeline {model!r} ({type(error).__name__}: {error}). "
                             "Hub ids need a network connection; a local folder needs model_index.json.") from error


class _TextTimer:
    """Forward hooks that add the time spent in the text encoder(s) to a stage timer's totals."""

    def __init__(self, pipeline, device: str):
        self.device, self.elapsed_ms, self._started = device, 0.0, 0.0
        for name in ("text_encoder", "text_encoder_2"):
            module = getattr(pipeline, name, None)
            if module is not None:
                module.register_forward_pre_hook(self._start)
                module.register_forward_hook(self._stop)

    def _start(self, *_):
        synchronize(self.device)
        self._started = time.perf_counter()

    def _stop(self, *_):
        synchronize(self.device)
        self.elapsed_ms += (time.perf_counter() - self._started) * 1000


class DiffusersGenerator(BaseGenerator):
    name = "latent"
    default_steps = 4
    default_guidance = None

    def __init__(self, options: SpeedOptions, model: str, **components):
        super().__init__(options)
        self.model_id = model
        self.pipeline = load_pipeline(model, self.dtype, **components).to(self.device)
        self.pipeline.set_progress_bar_config(disable=True)
        if self.options.scheduler:
            from genimg.sampling import make_scheduler

            self.pipeline.scheduler = make_scheduler(self.options.scheduler, self.pipeline.scheduler.config)
        self.text_timer = _TextTimer(self.pipeline, self.device)

    def generate(self, prompt: str, steps: int | None = None, batch_size: int = 1, seed: int = 0,
                 guidance: float | None = None, on_step=None) -> Generation:
        request = Request(prompt, steps, batch_size, seed, guidance).validated()
        extra = {} if request.guidance is None else {"guidance_scale": request.guidance}
        callback = None
        if on_step is not None:
            def callback(pipe, index, timestep, kwargs):
                on_step(index + 1, pipe.num_timesteps)
                return kwargs
        with self.lock, torch.inference_mode():
            reset_peak_memory(self.device)
            timer, self.text_timer.elapsed_ms = StageTimer(self.device), 0.0
            with timer.stage("denoise"):
                latents = self.pipeline(
                    request.prompt, num_inference_steps=request.steps or self.default_steps,
                    num_images_per_prompt=request.batch_size, output_type="latent",
                    generator=torch.Generator().manual_seed(request.seed), callback_on_step_end=callback, **extra,
                ).images
            with timer.stage("decode"):
                vae = self.pipeline.vae
                images = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
            with timer.stage("to_pil"):
                pil_images = to_pil(images)
            timings = timer.finish()
        timings["text_encode"] = self.text_timer.elapsed_ms
        timings["denoise"] -= self.text_timer.elapsed_ms
        info = {"backend": self.name, "model": self.model_id, "steps": request.steps or self.default_steps,
                "prompt": request.prompt, "seed": request.seed, "precision": self.options.precision,
                "device": self.device, "notes": list(self.notes)}
        return Generation(pil_images, timings, peak_memory_bytes(self.device), info)
