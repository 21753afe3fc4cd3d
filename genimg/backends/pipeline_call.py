"""The fallback for pipelines genimg's own loop does not know (SDXL, PixArt, ...): the pipeline's own ``__call__``,
timed per stage, with the guidance cutoff applied through its step callback.

Text encoding is timed with hooks on the pipeline's text encoder(s), so the breakdown works for any of them;
denoising is the rest of the pipeline call; decoding is timed on its own.
"""
from __future__ import annotations

import dataclasses
import time

import torch

from genimg.accel import add_note
from genimg.backends.base import single_image_requests, to_pil
from genimg.guards import Deadline, call_freeing_memory_on_oom, check_finite, check_pixel_budget
from genimg.options import Request
from genimg.sampling import guided_step_count
from genimg.threads import on_torch_thread
from genimg.timing import Generation, StageTimer, peak_memory_bytes, reset_peak_memory, synchronize


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


class PipelineCall:
    """Generations of a ``DiffusersGenerator`` through ``generator.pipeline.__call__``."""

    def __init__(self, generator):
        self.generator, self.pipeline = generator, generator.pipeline
        self.text_timer = _TextTimer(self.pipeline, generator.device)

    def generate(self, prompt: str, steps: int | None = None, batch_size: int = 1, seed: int = 0,
                 guidance: float | None = None, on_step=None, timeout_s: float | None = None,
                 negative_prompt: str | None = None) -> Generation:
        generator, deadline = self.generator, Deadline(timeout_s)
        request = generator.with_defaults(Request(prompt, steps, batch_size, seed, guidance,
                                                  negative_prompt).validated())
        check_pixel_budget(request.batch_size, generator.image_size, generator.max_pixels)
        images, timings, peak_memory = self._run(request.prompt, request, torch.Generator().manual_seed(request.seed),
                                                 on_step, deadline)
        return Generation(images, timings, peak_memory, generator.info(request, generator.truncated(request.prompt)))

    def generate_batch(self, prompts: list[str], seeds: list[int], steps: int | None = None,
                       guidance: float | None = None, on_step=None, timeout_s: float | None = None) -> list[Generation]:
        """One image per (prompt, seed), batched: diffusers takes a list of prompts and one generator per image."""
        generator, deadline = self.generator, Deadline(timeout_s)
        requests = single_image_requests(prompts, seeds, steps, guidance)
        batch = generator.with_defaults(dataclasses.replace(requests[0], batch_size=len(requests)))
        check_pixel_budget(batch.batch_size, generator.image_size, generator.max_pixels)
        generators = [torch.Generator().manual_seed(r.seed) for r in requests]
        images, timings, peak_memory = self._run([r.prompt for r in requests], batch, generators, on_step, deadline)
        return [Generation([image], timings, peak_memory,
                           {**generator.info(dataclasses.replace(batch, prompt=r.prompt, seed=r.seed),
                                             generator.truncated(r.prompt)), "batched_with": len(requests)})
                for r, image in zip(requests, images)]

    def _run(self, prompt, request: Request, seeded, on_step, deadline):
        on_step = deadline.wrap(on_step)
        cutoff_inputs = self._cutoff_tensor_inputs()
        guided_steps = guided_step_count(request.steps, self.generator.options.guidance_cutoff)
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
        if getattr(request, "negative_prompt", None):
            extra["negative_prompt"] = request.negative_prompt
        if cutoff_inputs:
            extra["callback_on_step_end_tensor_inputs"] = cutoff_inputs
        # A list of prompts already holds one image each; one prompt is repeated batch_size times.
        per_prompt = 1 if isinstance(prompt, list) else request.batch_size
        device = self.generator.device

        def run():
            with self.generator.lock, torch.inference_mode():
                deadline.check("waiting for the device")
                reset_peak_memory(device)
                timer, self.text_timer.elapsed_ms = StageTimer(device), 0.0
                with timer.stage("denoise"):
                    latents = self.pipeline(
                        prompt, num_inference_steps=request.steps, num_images_per_prompt=per_prompt,
                        output_type="latent", generator=seeded, callback_on_step_end=callback, **extra,
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
                return pil_images, timings, peak_memory_bytes(device)

        return call_freeing_memory_on_oom(lambda: on_torch_thread(run, device), request.batch_size)

    def _cutoff_tensor_inputs(self) -> list[str]:
        """The doubled (unconditional + conditional) tensors a guidance cutoff halves; [] when no cutoff is asked for
        or the pipeline does not hand them to its step callback (then the cutoff is noted and ignored)."""
        if self.generator.options.guidance_cutoff is None:
            return []
        offered = getattr(self.pipeline, "_callback_tensor_inputs", [])
        if hasattr(type(self.pipeline), "do_perturbed_attention_guidance"):
            # PAG stacks a third, perturbed copy of every input: halving them as below would break the pipeline.
            add_note(self.generator.notes, f"guidance cutoff: {type(self.pipeline).__name__} adds perturbed-attention "
                                           "guidance to every step; ignored.")
            return []
        if "prompt_embeds" not in offered:
            add_note(self.generator.notes, f"guidance cutoff: {type(self.pipeline).__name__} does not pass "
                                           "prompt_embeds to its step callback; ignored.")
            return []
        return [name for name in ("prompt_embeds", "add_text_embeds", "add_time_ids") if name in offered]
