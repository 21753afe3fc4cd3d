"""Any diffusers text-to-image pipeline (hub id or local folder) behind the same interface and timings.

Text encoding is timed with hooks on the pipeline's text encoder(s), so the breakdown works for SD 1.5, SD-Turbo,
SDXL(-Turbo) and LCM pipelines alike; denoising is the rest of the pipeline call; decoding is timed on its own.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from genimg.accel import add_note
from genimg.backends.base import BaseGenerator, single_image_requests, to_pil
from genimg.errors import ModelLoadError
from genimg.guards import Deadline, call_freeing_memory_on_oom, check_finite, check_pixel_budget
from genimg.options import Request, SpeedOptions
from genimg.sampling import guided_step_count
from genimg.timing import Generation, StageTimer, peak_memory_bytes, reset_peak_memory, synchronize


def model_source(model: str) -> str:
    """A local folder as a path, else a hub id of the form 'owner/name'; anything else is refused."""
    local = Path(model).expanduser()
    if local.exists():
        return str(local)
    if "/" not in model.strip("/") or model.startswith((".", "/", "~")):
        raise ModelLoadError(f"{model!r} is neither a local folder nor a hub id of the form 'owner/name'.")
    return model


def load_pipeline(model: str, dtype: torch.dtype, **components):
    from diffusers import DiffusionPipeline

    source = model_source(model)
    try:
        return DiffusionPipeline.from_pretrained(source, torch_dtype=dtype, **components)
    except Exception as error:  # diffusers raises many types (OSError, EnvironmentError, ValueError...)
        raise ModelLoadError(f"Could not load the diffusers pipeline {model!r} ({type(error).__name__}: {error}). "
                             "Hub ids need a network connection; a local folder needs model_index.json.") from error


def load_tiny_decoder(model: str, dtype: torch.dtype):
    """diffusers' AutoencoderTiny from a hub id (e.g. madebyollin/taesd for SD 1.x/2.x latents) or a folder."""
    from diffusers import AutoencoderTiny

    source = model_source(model)
    try:
        return AutoencoderTiny.from_pretrained(source, torch_dtype=dtype)
    except Exception as error:  # noqa: BLE001 - as for pipelines: many error types mean "could not load"
        raise ModelLoadError(f"Could not load the tiny decoder {model!r} ({type(error).__name__}: {error}). "
                             "Hub ids need a network connection; a local folder needs an AutoencoderTiny's "
                             "config.json and weights.") from error


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


def pipeline_image_size(pipeline) -> tuple[int, int]:
    """The (height, width) a pipeline draws by default: its latent sample size times the VAE's downscale."""
    scale = getattr(pipeline, "vae_scale_factor", 8)
    denoiser = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
    sample_size = getattr(pipeline, "default_sample_size", None) or getattr(denoiser.config, "sample_size", 64)
    height, width = sample_size if isinstance(sample_size, (tuple, list)) else (sample_size, sample_size)
    return int(height * scale), int(width * scale)


class DiffusersGenerator(BaseGenerator):
    name = "latent"
    default_steps = 4
    default_guidance = None
    step_noise_per_image = True  # generate_batch hands the pipeline one generator per image

    def __init__(self, options: SpeedOptions, model: str, **components):
        super().__init__(options)
        self.model_id = model
        self.pipeline = load_pipeline(model, self.dtype, **components).to(self.device)
        self.pipeline.set_progress_bar_config(disable=True)
        if self.options.scheduler:
            from genimg.sampling import make_scheduler

            self.pipeline.scheduler = make_scheduler(self.options.scheduler, self.pipeline.scheduler.config)
        if isinstance(self.options.tiny_decoder, str):
            # diffusers' own way to decode with TAESD: the tiny autoencoder takes the VAE's place in the pipeline.
            self.pipeline.vae = load_tiny_decoder(self.options.tiny_decoder, self.dtype).to(self.device)
            add_note(self.notes, f"tiny decoder: AutoencoderTiny from {self.options.tiny_decoder} decodes the "
                                 "latents (its own weights, not the pipeline's VAE).")
        self.text_timer = _TextTimer(self.pipeline, self.device)
        self.image_size = pipeline_image_size(self.pipeline)
        self._apply_speed_options()

    def _apply_speed_options(self) -> None:
        """Fused QKV, channels_last, torch.compile / CUDA graphs on the denoiser and the VAE decoder, as asked."""
        import dataclasses

        from genimg.accel import fuse_qkv, prepare_module

        for name in ("unet", "transformer"):
            module = getattr(self.pipeline, name, None)
            if isinstance(module, torch.nn.Module):
                # Not pipeline.unet = ...: DiffusionPipeline.__setattr__ would register the wrapper as a component.
                object.__setattr__(self.pipeline, name, prepare_module(module, self.options, self.notes, name=name))
        vae = getattr(self.pipeline, "vae", None)
        if vae is not None and hasattr(vae, "decoder"):
            if self.options.fuse_qkv:
                fuse_qkv(vae, self.notes, "VAE")
            vae.decoder = prepare_module(vae.decoder, dataclasses.replace(self.options, fuse_qkv=False), self.notes,
                                         name="VAE decoder")
        if self.options.tiny_decoder is True:
            add_note(self.notes, "tiny decoder: name one for a model= pipeline (tiny_decoder='madebyollin/taesd' for "
                                 "SD 1.x/2.x, or a local AutoencoderTiny folder); the pipeline's VAE decodes.")
        if self.options.match_concepts:
            add_note(self.notes, "concept matching: only for the embedded emoji models; prompts reach the pipeline as "
                                 "typed.")

    def generate(self, prompt: str, steps: int | None = None, batch_size: int = 1, seed: int = 0,
                 guidance: float | None = None, on_step=None, timeout_s: float | None = None) -> Generation:
        deadline = Deadline(timeout_s)
        request = self.with_defaults(Request(prompt, steps, batch_size, seed, guidance).validated())
        check_pixel_budget(request.batch_size, self.image_size)
        images, timings, peak_memory = self._run(request.prompt, request, torch.Generator().manual_seed(request.seed),
                                                 on_step, deadline)
        return Generation(images, timings, peak_memory, self.info(request, self.truncated(request.prompt)))

    def generate_batch(self, prompts: list[str], seeds: list[int], steps: int | None = None,
                       guidance: float | None = None, on_step=None, timeout_s: float | None = None) -> list[Generation]:
        """One image per (prompt, seed), batched: diffusers takes a list of prompts and one generator per image."""
        deadline = Deadline(timeout_s)
        requests = single_image_requests(prompts, seeds, steps, guidance)
        batch = self.with_defaults(dataclasses.replace(requests[0], batch_size=len(requests)))
        check_pixel_budget(batch.batch_size, self.image_size)
        generators = [torch.Generator().manual_seed(r.seed) for r in requests]
        images, timings, peak_memory = self._run([r.prompt for r in requests], batch, generators, on_step, deadline)
        return [Generation([image], timings, peak_memory,
                           {**self.info(dataclasses.replace(batch, prompt=r.prompt, seed=r.seed),
                                        self.truncated(r.prompt)), "batched_with": len(requests)})
                for r, image in zip(requests, images)]

    def _run(self, prompt, request: Request, generator, on_step, deadline):
        on_step = deadline.wrap(on_step)
        cutoff_inputs = self._cutoff_tensor_inputs()
        guided_steps = guided_step_count(request.steps, self.options.guidance_cutoff)
        callback = None
        if on_step is not None or cutoff_inputs:
            def callback(pipe, index, timestep, kwargs):
                if cutoff_inputs and index + 1 == guided_steps and pipe.do_classifier_free_guidance:
                    # diffusers' dynamic-CFG recipe: keep the conditional half of every doubled input, guidance off.
                    kwargs.update({name: kwargs[name].chunk(2)[-1] for name in cutoff_inputs})
                    pipe._guidance_scale = 0.0
                if on_step is not None:
                    on_step(index + 1, pipe.num_timesteps)
                return kwargs
        extra = {} if request.guidance is None else {"guidance_scale": request.guidance}
        if cutoff_inputs:
            extra["callback_on_step_end_tensor_inputs"] = cutoff_inputs
        # A list of prompts already holds one image each; one prompt is repeated batch_size times.
        per_prompt = 1 if isinstance(prompt, list) else request.batch_size

        def run():
            with self.lock, torch.inference_mode():
                deadline.check("waiting for the device")
                reset_peak_memory(self.device)
                timer, self.text_timer.elapsed_ms = StageTimer(self.device), 0.0
                with timer.stage("denoise"):
                    latents = self.pipeline(
                        prompt, num_inference_steps=request.steps, num_images_per_prompt=per_prompt,
                        output_type="latent", generator=generator, callback_on_step_end=callback, **extra,
                    ).images
                with timer.stage("decode"):
                    vae = self.pipeline.vae
                    images = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
                check_finite(images)
                with timer.stage("to_pil"):
                    pil_images = to_pil(images)
                timings = timer.finish()
                timings["text_encode"] = self.text_timer.elapsed_ms
                timings["denoise"] -= self.text_timer.elapsed_ms
                return pil_images, timings, peak_memory_bytes(self.device)

        return call_freeing_memory_on_oom(run, request.batch_size)

    def _cutoff_tensor_inputs(self) -> list[str]:
        """The doubled (unconditional + conditional) tensors a guidance cutoff halves; [] when no cutoff is asked for
        or the pipeline does not hand them to its step callback (then the cutoff is noted and ignored)."""
        if self.options.guidance_cutoff is None:
            return []
        offered = getattr(self.pipeline, "_callback_tensor_inputs", [])
        if "prompt_embeds" not in offered:
            add_note(self.notes, f"guidance cutoff: {type(self.pipeline).__name__} does not pass prompt_embeds to "
                                 "its step callback; ignored.")
            return []
        return [name for name in ("prompt_embeds", "add_text_embeds", "add_time_ids") if name in offered]

    @property
    def scheduler(self):
        return self.pipeline.scheduler

    def truncated(self, prompt: str) -> bool:
        """Whether the pipeline's tokenizer cuts this prompt (diffusers only logs it)."""
        tokenizer = getattr(self.pipeline, "tokenizer", None)
        return tokenizer is not None and len(tokenizer(prompt)["input_ids"]) > tokenizer.model_max_length

    def info(self, request: Request, truncated: bool) -> dict:
        return {**super().info(request, truncated), "model": self.model_id}
