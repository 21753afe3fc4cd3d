"""The latent-diffusion backend: the embedded emoji model (teacher or distilled) or any diffusers pipeline.

``latent`` runs the embedded teacher (DPM-Solver++ by default, classifier-free guidance); ``latent-lcm`` runs the
distilled student with LCMScheduler in 1-4 steps. ``model=`` loads any diffusers text-to-image pipeline instead
(hub id or local folder), see ``genimg.backends.diffusers_pipeline``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
from diffusers import DDPMScheduler

from genimg.accel import add_note, prepare_module
from genimg.assets import ASSETS, optional_model
from genimg.backends.base import BaseGenerator, from_pil, seeded_noise, step_generators
from genimg.backends.calibration import CALIBRATION_ID
from genimg.options import Request, SpeedOptions
from genimg.sampling import denoise, guided_step_count, make_scheduler

EMBEDDED = ASSETS / "latent"
DISTILLED = ASSETS / "latent-lcm"
PRUNED = "latent-pruned"  # the teacher's UNet, channel-pruned (genimg.train.prune); same VAE and tokenizer
TINY_DECODER = ASSETS / "latent-tiny-decoder"


class LatentGenerator(BaseGenerator):
    name = "latent"
    default_steps = 20
    default_guidance = 5.0
    step_noise_per_image = True

    def __init__(self, options: SpeedOptions, folder: Path = EMBEDDED, unet_folder: Path | None = None,
                 default_scheduler: str = "dpm++"):
        super().__init__(options)
        self.folder = folder
        self.image_encoder: AutoencoderKL | None = None  # the KL autoencoder, loaded by the first img2img
        self.text = self._text_encoder()
        self.concepts = self._concept_index()
        unet_folder = unet_folder or folder
        self.scheduler_name = self.options.scheduler or default_scheduler
        self.scheduler_config = DDPMScheduler.load_config(unet_folder / "scheduler")
        # One scheduler per generator, built (and an unknown name refused) at load time: generations are serialised
        # by self.lock and set_timesteps resets a scheduler's per-run state, so rebuilding it per call (~1 ms) is waste.
        self.scheduler = make_scheduler(self.scheduler_name, self.scheduler_config)
        unet = UNet2DConditionModel.from_pretrained(unet_folder / "unet", torch_dtype=self.dtype)
        unet = unet.to(self.device).eval()
        if options.pruned:
            add_note(self.notes, f"pruned: UNet block widths {tuple(unet.config.block_out_channels)} "
                                 "(unpruned: (64, 128, 160)).")
        self.unet = prepare_module(unet, self.options, self.notes, name="UNet", calibration_id=CALIBRATION_ID,
                                   calibration=lambda: self._calibration_calls(unet, decode_only)[0])
        self.latent_shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
        if self.options.tiny_decoder:
            if isinstance(self.options.tiny_decoder, str):
                from genimg.backends.diffusers_pipeline import load_tiny_decoder

                decoder = load_tiny_decoder(self.options.tiny_decoder, self.dtype)
            else:
                decoder = AutoencoderTiny.from_pretrained(TINY_DECODER, torch_dtype=self.dtype)
            self.latent_scale = 1.0  # the tiny decoder reads the UNet's latents as they are
            self.notes.append("tiny decoder: AutoencoderTiny decodes the latents (its own weights, not the VAE's).")
        else:
            decoder = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=self.dtype)
            self.latent_scale = decoder.config.scaling_factor
        decoder = decoder.to(self.device).eval()
        self.decoder = decoder
        decode_only = _DecodeOnly(decoder)
        self.decode_fn = prepare_module(decode_only, self.options, self.notes, name="decoder",
                                        calibration=lambda: self._calibration_calls(unet, decode_only)[1],
                                        calibration_id=CALIBRATION_ID)
        self.empty_context = self.text.encode([""]).tokens
        self._calibration = None

    def _calibration_calls(self, unet, decode_only) -> tuple[list, list]:
        """Real (UNet, decoder) inputs for static int8, from this model's own sampling loop; recorded once."""
        if self._calibration is None:
            from genimg.backends.calibration import latent_calls

            self._calibration = latent_calls(self, unet, decode_only)
        return self._calibration

    def img2img_refusal(self) -> str | None:
        return None

    def _load_image_encoder(self) -> None:
        """The KL autoencoder encodes images for img2img (the tiny decoder only decodes): the one decoding already,
        or loaded once from the model folder."""
        with self.lock:
            if self.image_encoder is None:
                encoder = self.decoder if isinstance(self.decoder, AutoencoderKL) else AutoencoderKL.from_pretrained(
                    self.folder / "vae", torch_dtype=self.dtype).to(self.device).eval()
                self.image_encoder = encoder

    def encode_image(self, picture) -> torch.Tensor:
        """A PIL image of the model's size -> (1, 4, H/4, W/4) latents as the UNet sees them."""
        pixels = from_pil(picture)
        encoded = self.image_encoder.encode(pixels.to(self.device, self.dtype)).latent_dist.mode()
        return encoded * self.image_encoder.config.scaling_factor

    def negative_prompt_info(self, request: Request) -> dict:
        guided = 0 if request.guidance <= 1 else guided_step_count(request.steps, self.options.guidance_cutoff)
        if not guided:
            note = (f"Negative prompt ignored: {self.name} runs no unconditional pass at guidance "
                    f"{request.guidance:g} (it would cost one extra UNet pass per step; the teacher 'latent' with "
                    "guidance above 1 uses it).")
        else:
            note = (f"Negative prompt used in the unconditional pass of {guided} of {request.steps} steps, in place "
                    "of the empty prompt: no extra UNet pass (guidance runs that pass anyway).")
        return {"text": request.negative_prompt, "used": bool(guided), "extra_unet_passes": 0, "note": note}

    def _generate(self, request, text, timer, on_step, start=None):
        scheduler = self.scheduler
        noise = seeded_noise((request.batch_size, *self.latent_shape), request.seed, self.device, self.dtype)
        # Schedulers that add noise while sampling (LCM) draw it from these: one per image for a batch of requests.
        generator = step_generators(request.seed)
        unconditional = self.empty_context
        if request.negative_prompt and request.guidance > 1:
            with timer.stage("text_encode"):  # as typed: the negative prompt is not matched to an emoji
                unconditional = self.text.encode([request.negative_prompt]).tokens
        steps, start_latents, start_step = request.steps, None, 0
        if start is not None:
            picture, steps, start_step = start
            with timer.stage("image_encode"):
                start_latents = self.encode_image(picture)
        with timer.stage("denoise"):
            latents = denoise(self.unet, scheduler, noise, text.tokens, steps, request.guidance,
                              unconditional, generator, on_step, self.options.guidance_cutoff,
                              start_latents=start_latents, start_step=start_step)
        with timer.stage("decode"):
            images = self.decode_fn(latents / self.latent_scale)
        return images


class _DecodeOnly(torch.nn.Module):
    """The decoder half as its own module, so it can be compiled on its own."""

    def __init__(self, autoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(latents, return_dict=False)[0]


def load(options: SpeedOptions, model=None):
    if model is not None:
        from genimg.backends.diffusers_pipeline import DiffusersGenerator

        return DiffusersGenerator(options, model)
    pruned = optional_model(PRUNED, "python -m genimg train prune-unet") if options.pruned else None
    return LatentGenerator(options, unet_folder=pruned)


class DistilledLatentGenerator(LatentGenerator):
    """The distilled student: guidance is baked in, so no unconditional pass; LCMScheduler, 1-4 steps."""

    name = "latent-lcm"
    default_steps = 4
    default_guidance = 1.0

    def __init__(self, options: SpeedOptions):
        super().__init__(options, EMBEDDED, unet_folder=DISTILLED, default_scheduler="lcm")
        if self.options.guidance_cutoff is not None:
            add_note(self.notes, "guidance cutoff: the distilled model runs no unconditional pass to cut; ignored.")


def load_distilled(options: SpeedOptions, model=None):
    return DistilledLatentGenerator(options)
