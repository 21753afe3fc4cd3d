"""Any diffusers text-to-image pipeline (hub id or local folder) behind the same interface and timings.

For the Stable Diffusion families whose parts genimg knows (SD 1.x/2.x, SD-Turbo, LCM-distilled SD, SDXL and
SDXL-Turbo: a UNet2DConditionModel, an AutoencoderKL or AutoencoderTiny and CLIP text encoders) the pipeline's
modules run in genimg's
own loop, the one the embedded models use: the prompt embedding cached per prompt, ``sampling.denoise`` with the
guidance cutoff, the UNet and decoder through ``accel.prepare_module``, noise drawn on the CPU (same seed, same image
on any device). Given the same starting noise it draws what the pipeline's ``__call__`` draws
(tests/test_diffusers_fast_path.py). Any other pipeline runs through its own ``__call__``
(``backends/pipeline_call.py``) and its notes say so.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import torch

from genimg.accel import add_note
from genimg.backends.base import BaseGenerator, from_pil, seeded_noise, step_generators
from genimg.backends.pipeline_call import PipelineCall
from genimg.errors import ModelLoadError
from genimg.options import SpeedOptions
from genimg.sampling import denoise
from genimg.text import LRUCache, TextEmbeddings
from genimg.timing import Generation, StageTimer

# The pipeline classes whose __call__ genimg's loop reproduces (LCM's is SD's without the unconditional pass; SDXL's
# adds a pooled text embedding and the image size as "time ids" to every UNet call).
SDXL = "StableDiffusionXLPipeline"
LOOP_PIPELINES = ("StableDiffusionPipeline", "LatentConsistencyModelPipeline", SDXL)
PROMPT_CACHE_SIZE = 256


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


def pipeline_image_size(pipeline) -> tuple[int, int]:
    """The (height, width) a pipeline draws by default: its latent sample size times the VAE's downscale."""
    scale = getattr(pipeline, "vae_scale_factor", 8)
    denoiser = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
    sample_size = getattr(pipeline, "default_sample_size", None) or getattr(denoiser.config, "sample_size", 64)
    height, width = sample_size if isinstance(sample_size, (tuple, list)) else (sample_size, sample_size)
    return int(height * scale), int(width * scale)


def loop_refusal(pipeline) -> str | None:
    """Why genimg's own loop cannot run ``pipeline`` (then its __call__ does), or None when it can."""
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

    kind = type(pipeline).__name__
    unet = getattr(pipeline, "unet", None)
    if kind not in LOOP_PIPELINES:
        return f"{kind} is not one of the pipelines genimg's loop runs ({', '.join(LOOP_PIPELINES)})"
    if not isinstance(unet, UNet2DConditionModel):
        return "its denoiser is not a UNet2DConditionModel"
    if unet.config.addition_embed_type != ("text_time" if kind == SDXL else None):
        return f"its UNet takes added conditioning of the kind {unet.config.addition_embed_type!r}"
    if kind == SDXL and (getattr(pipeline, "text_encoder", None) is None or pipeline.text_encoder_2 is None):
        return "it lacks one of SDXL's two text encoders"
    if not isinstance(getattr(pipeline, "vae", None), (AutoencoderKL, AutoencoderTiny)):
        return "its autoencoder is neither an AutoencoderKL nor an AutoencoderTiny"
    if getattr(pipeline, "text_encoder", None) is None or getattr(pipeline, "tokenizer", None) is None:
        return "it has no text encoder and tokenizer"
    if kind == "LatentConsistencyModelPipeline" and unet.config.time_cond_proj_dim is None:
        return "its UNet takes no guidance embedding (time_cond_proj_dim)"
    return None


def default_guidance(pipeline) -> float:
    """The guidance scale the pipeline's __call__ uses when none is given (7.5 for SD, 8.5 for LCM)."""
    default = inspect.signature(type(pipeline).__call__).parameters["guidance_scale"].default
    return float(default)


class DiffusersGenerator(BaseGenerator):
    name = "latent"
    default_steps = 4
    default_guidance = None
    step_noise_per_image = True  # both paths seed step noise per image in a batch of separate requests
    can_upscale = False  # a pipeline draws at its own resolution; the upscaler is made for the 64 px models

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
        self.image_size = pipeline_image_size(self.pipeline)
        refusal = loop_refusal(self.pipeline)  # before prepare_module wraps the UNet
        self.xl = refusal is None and type(self.pipeline).__name__ == SDXL
        if self.xl:
            self._upcast_vae_if_needed()
        self._apply_speed_options()
        self.fast_path = refusal is None
        if self.fast_path:
            self._prepare_loop()
        else:
            self.call = PipelineCall(self)
            add_note(self.notes, f"fallback: {type(self.pipeline).__name__} runs through its own __call__ ({refusal});"
                                 " no prompt-embedding cache. genimg's own loop runs SD 1.x/2.x, SD-Turbo, "
                                 "LCM-distilled SD and SDXL(-Turbo) pipelines.")

    def _prepare_loop(self) -> None:
        """What genimg's loop needs from the pipeline: latent shape and scale, guidance, the empty prompt."""
        pipeline, unet = self.pipeline, self.pipeline.unet
        height, width = self.image_size
        scale = pipeline.vae_scale_factor
        self.latent_shape = (unet.config.in_channels, height // scale, width // scale)  # (4, H/8, W/8)
        self.latent_scale = pipeline.vae.config.scaling_factor
        self.default_guidance = default_guidance(pipeline)
        if self.xl:  # original size, crop corner, target size: (1, 6), as SDXL's __call__ builds them by default
            self.time_ids = pipeline._get_add_time_ids(
                self.image_size, (0, 0), self.image_size, dtype=self.dtype,
                text_encoder_projection_dim=pipeline.text_encoder_2.config.projection_dim).to(self.device)
        # LCM UNets take the guidance scale as an input (a w-embedding) and run no unconditional pass.
        self.guidance_embedding_dim = unet.config.time_cond_proj_dim
        self._prompt_cache = LRUCache(PROMPT_CACHE_SIZE)  # prompt -> (context, pooled, truncated)
        # (1, tokens, dim): the unconditional context, as diffusers makes it (SDXL base: zeros for an empty prompt).
        self.empty_context, self.empty_pooled, _ = self._embed("")
        if self.xl and pipeline.config.force_zeros_for_empty_prompt:
            self.empty_context, self.empty_pooled = (torch.zeros_like(self.empty_context),
                                                     torch.zeros_like(self.empty_pooled))
        add_note(self.notes, f"fast path: genimg's sampling loop runs this {type(pipeline).__name__}'s modules, the "
                             "prompt embedding cached per prompt.")
        if self.guidance_embedding_dim is not None and self.options.guidance_cutoff is not None:
            add_note(self.notes, "guidance cutoff: this UNet takes guidance as an input and runs no unconditional "
                                 "pass to cut; ignored.")

    def _upcast_vae_if_needed(self) -> None:
        """SDXL's VAE overflows in fp16; like SDXL's __call__, decode in fp32 when its config says force_upcast."""
        vae = self.pipeline.vae
        if self.dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
            vae.to(torch.float32)
            add_note(self.notes, "SDXL VAE: decodes in fp32 (its config sets force_upcast: fp16 overflows), as "
                                 "diffusers does.")

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
                 guidance: float | None = None, on_step=None, timeout_s: float | None = None,
                 negative_prompt: str | None = None, best_of: int = 1, layout: bool = True) -> Generation:
        """As BaseGenerator.generate; ``layout`` changes nothing here: prompts reach the pipeline as typed, there is
        no scene to arrange."""
        if not self.fast_path and best_of == 1:
            return self.call.generate(prompt, steps, batch_size, seed, guidance, on_step, timeout_s, negative_prompt)
        # best_of != 1 is refused there with its reason (the judge knows the embedded emoji models only).
        return super().generate(prompt, steps, batch_size, seed, guidance, on_step, timeout_s, negative_prompt,
                                best_of, layout)

    def negative_prompt_info(self, request) -> dict:
        """A negative prompt replaces the empty prompt of the unconditional pass, as the pipeline's own does."""
        if not self.fast_path:
            return {"text": request.negative_prompt, "used": True, "extra_unet_passes": 0,
                    "note": "negative prompt: handed to the pipeline's __call__."}
        used = request.guidance > 1 and self.guidance_embedding_dim is None
        note = ("negative prompt: encoded by the pipeline and used as the unconditional context of every guided step."
                if used else
                "negative prompt: ignored, this request runs no unconditional pass (guidance <= 1 or an LCM UNet).")
        return {"text": request.negative_prompt, "used": used, "extra_unet_passes": 0, "note": note}

    def generate_batch(self, prompts: list[str], seeds: list[int], steps: int | None = None,
                       guidance: float | None = None, on_step=None, timeout_s: float | None = None,
                       layout: bool = True) -> list[Generation]:
        if not self.fast_path:
            return self.call.generate_batch(prompts, seeds, steps, guidance, on_step, timeout_s)
        return super().generate_batch(prompts, seeds, steps, guidance, on_step, timeout_s, layout)

    @torch.inference_mode()
    def _embed(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
        """(1, tokens, dim) prompt embedding from the pipeline's own encode_prompt (its tokenizers, attention mask,
        clip skip), SDXL's (1, dim) pooled embedding (else None), and whether the prompt was truncated; cached per
        prompt (the text encoders are frozen)."""
        if prompt not in self._prompt_cache:
            encoded = self.pipeline.encode_prompt(prompt, device=self.device, num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False)
            self._prompt_cache.put(prompt, (encoded[0], encoded[2] if self.xl else None, self.truncated(prompt)))
        return self._prompt_cache.get(prompt)

    def encode(self, prompts: list[str], batch_size: int, timer: StageTimer) -> TextEmbeddings:
        with timer.stage("text_encode"):
            entries = [self._embed(prompt) for prompt in prompts]
            tokens = torch.cat([embedding for embedding, _, _ in entries])  # (len(prompts), tokens, dim)
            # SDXL's pooled embedding, (len(prompts), dim); SD UNets read the token embeddings only.
            pooled = torch.cat([pooled for _, pooled, _ in entries]) if self.xl else None
        truncated = [was_cut for _, _, was_cut in entries]
        if len(prompts) != batch_size:  # one prompt for the whole batch
            tokens, truncated = tokens.expand(batch_size, -1, -1), truncated * batch_size
            pooled = pooled.expand(batch_size, -1) if self.xl else None
        return TextEmbeddings(tokens, pooled, truncated)

    def img2img_refusal(self) -> str | None:
        if self.fast_path:
            return None
        return (f"Image to image runs in genimg's own loop, and {type(self.pipeline).__name__} runs through its own "
                "__call__ (see the notes); use an SD 1.x/2.x, SD-Turbo, LCM or SDXL pipeline.")

    def _load_image_encoder(self) -> None:
        """The pipeline's own autoencoder encodes the image (AutoencoderKL, or AutoencoderTiny where it decodes)."""
        self.image_encoder = self.pipeline.vae

    def encode_image(self, picture) -> torch.Tensor:
        """A PIL image of the pipeline's size -> (1, 4, H/8, W/8) latents as the UNet sees them."""
        vae = self.image_encoder
        pixels = from_pil(picture)
        encoded = vae.encode(pixels.to(self.device, vae.dtype))
        latents = encoded.latent_dist.mode() if hasattr(encoded, "latent_dist") else encoded.latents
        return (latents * self.latent_scale).to(self.dtype)

    def _generate(self, request, text: TextEmbeddings, timer: StageTimer, on_step, start=None) -> torch.Tensor:
        noise = seeded_noise((request.batch_size, *self.latent_shape), request.seed, self.device, self.dtype)
        generator = step_generators(request.seed)
        guidance, unet_kwargs, guided_unet_kwargs = request.guidance, {}, None
        if self.guidance_embedding_dim is not None:
            # As diffusers' LCM and SD pipelines do: w = guidance - 1, embedded, and no classifier-free guidance.
            w = torch.tensor(request.guidance - 1).repeat(request.batch_size)
            unet_kwargs["timestep_cond"] = self.pipeline.get_guidance_scale_embedding(
                w, embedding_dim=self.guidance_embedding_dim).to(device=self.device, dtype=self.dtype)
            guidance = 1.0
        unconditional, unconditional_pooled = self.empty_context, self.empty_pooled
        if getattr(request, "negative_prompt", None) and guidance > 1:
            with timer.stage("text_encode"):  # cached per prompt like any other (diffusers: never zeros then)
                unconditional, unconditional_pooled, _ = self._embed(request.negative_prompt)
        if self.xl:
            unet_kwargs, guided_unet_kwargs = self._added_conditioning(text.pooled, unconditional_pooled,
                                                                       unet_kwargs)
        steps, start_latents, start_step = request.steps, None, 0
        if start is not None:  # image to image (see BaseGenerator.img2img)
            picture, steps, start_step = start
            with timer.stage("image_encode"):
                start_latents = self.encode_image(picture)
        with timer.stage("denoise"):
            latents = denoise(self.pipeline.unet, self.scheduler, noise, text.tokens, steps, guidance,
                              unconditional, generator, on_step, self.options.guidance_cutoff, unet_kwargs,
                              guided_unet_kwargs, start_latents=start_latents, start_step=start_step)
        with timer.stage("decode"):
            vae = self.pipeline.vae
            images = vae.decode((latents / self.latent_scale).to(vae.dtype), return_dict=False)[0]
        return images

    def _added_conditioning(self, pooled: torch.Tensor, unconditional_pooled: torch.Tensor,
                            unet_kwargs: dict) -> tuple[dict, dict]:
        """SDXL's added conditioning for conditional-only and guided UNet calls (unconditional half first)."""
        time_ids = self.time_ids.expand(len(pooled), -1)  # (B, 6)
        both_pooled = torch.cat([unconditional_pooled.expand_as(pooled), pooled])  # (2B, dim)
        return ({**unet_kwargs, "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}},
                {**unet_kwargs, "added_cond_kwargs": {"text_embeds": both_pooled,
                                                      "time_ids": torch.cat([time_ids, time_ids])}})

    @property
    def scheduler(self):
        return self.pipeline.scheduler

    def truncated(self, prompt: str) -> bool:
        """Whether the pipeline's tokenizer cuts this prompt (diffusers only logs it)."""
        tokenizer = getattr(self.pipeline, "tokenizer", None)
        return tokenizer is not None and len(tokenizer(prompt)["input_ids"]) > tokenizer.model_max_length

    def info(self, request, truncated: bool, match=None) -> dict:
        return {**super().info(request, truncated, match), "model": self.model_id}
