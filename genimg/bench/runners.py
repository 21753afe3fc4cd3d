"""What the benchmark runs: a genimg configuration, stock diffusers on the same weights, and a configuration's
compute floor (its modules' forward passes alone). ``genimg.bench.run`` times them."""
from __future__ import annotations

import time

import torch

from genimg.bench.config import STOCK, TIMING_PROMPT, BenchConfig
from genimg.options import SpeedOptions
from genimg.sampling import guided_step_count
from genimg.timing import Generation, peak_memory_bytes, reset_peak_memory, synchronize


class GenimgRunner:
    """One genimg configuration, loaded on its own (not shared through the default generator cache)."""

    def __init__(self, config: BenchConfig, device: str):
        self.config, self.device = config, device
        self.generator = None

    def load(self) -> None:
        from genimg.registry import GeneratorCache

        self.generator = GeneratorCache(capacity=1).get(self.config.backend, self.config.speed_options(self.device))

    def run(self, prompt: str = TIMING_PROMPT, seed: int = 0, batch_size: int | None = None) -> Generation:
        if not self.config.prompt_cache:
            self.generator.text.clear_cache()
        return self.generator.generate(prompt, steps=self.config.steps, batch_size=batch_size or self.config.batch_size,
                                       seed=seed)


class StockRunner:
    """Stock diffusers StableDiffusionPipeline on the embedded latent weights, timed per stage with forward hooks."""

    def __init__(self, config: BenchConfig, device: str):
        self.config, self.device = config, SpeedOptions(device=device).validated().device
        self.pipeline, self.stage_ms, self._started = None, {}, {}

    def load(self) -> None:
        from diffusers import StableDiffusionPipeline

        from genimg.backends.latent import EMBEDDED, LatentGenerator
        from genimg.text import load_text_model, load_tokenizer

        # The OpenVINO peer keeps torch's modules in fp32 and runs bf16 through OpenVINO's precision hint.
        openvino = self.config.engine == "openvino"
        dtype = SpeedOptions(precision="fp32" if openvino else self.config.precision).torch_dtype
        self.guidance = LatentGenerator.default_guidance  # the same guidance genimg's teacher uses
        self.pipeline = StableDiffusionPipeline.from_pretrained(
            EMBEDDED, text_encoder=load_text_model(), tokenizer=load_tokenizer(), torch_dtype=dtype,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False).to(self.device)
        self.pipeline.set_progress_bar_config(disable=True)
        self.notes = ["stock diffusers StableDiffusionPipeline; its own text encoding every call, PIL output"]
        if openvino:
            run_with_openvino(self.pipeline, self.config, self.guidance, self.notes)
        for stage, module in (("text_encode", self.pipeline.text_encoder), ("denoise", self.pipeline.unet),
                              ("decode", self.pipeline.vae.decoder)):
            module.register_forward_pre_hook(lambda *_, stage=stage: self._start(stage))
            module.register_forward_hook(lambda *_, stage=stage: self._stop(stage))

    def _start(self, stage: str) -> None:
        synchronize(self.device)
        self._started[stage] = time.perf_counter()

    def _stop(self, stage: str) -> None:
        synchronize(self.device)
        self.stage_ms[stage] = self.stage_ms.get(stage, 0.0) + (time.perf_counter() - self._started[stage]) * 1000

    def run(self, prompt: str = TIMING_PROMPT, seed: int = 0, batch_size: int | None = None) -> Generation:
        reset_peak_memory(self.device)
        self.stage_ms = {}
        synchronize(self.device)
        start = time.perf_counter()
        with torch.inference_mode():
            images = self.pipeline(prompt, num_inference_steps=self.config.steps, guidance_scale=self.guidance,
                                   num_images_per_prompt=batch_size or self.config.batch_size,
                                   generator=torch.Generator().manual_seed(seed)).images
        synchronize(self.device)
        total = (time.perf_counter() - start) * 1000
        timings = dict(self.stage_ms, other=total - sum(self.stage_ms.values()), total=total)
        info = {"backend": STOCK, "steps": self.config.steps, "guidance": self.guidance, "notes": list(self.notes)}
        return Generation(images, timings, peak_memory_bytes(self.device), info)


def run_with_openvino(pipeline, config: BenchConfig, guidance: float, notes: list[str]) -> None:
    """The UNet and VAE decoder of a stock pipeline run by OpenVINO (fp32, bf16 hint, or NNCF int8 calibrated on
    the pipeline's own calls for the calibration prompts), as FastSD CPU runs models; the rest stays stock."""
    import copy

    from genimg.accel.openvino import OpenVINOModule
    from genimg.accel.quantize import record_calls
    from genimg.backends.calibration import CALIBRATION_ID, calibration_prompts

    unet_calls, decoder_calls = [], []
    if config.quantize == "int8":
        prompts = calibration_prompts()
        for seed, half in enumerate((prompts[:len(prompts) // 2], prompts[len(prompts) // 2:])):
            def run(half=half, seed=seed):
                pipeline(half, num_inference_steps=config.steps, guidance_scale=guidance,
                         generator=torch.Generator().manual_seed(seed))

            with torch.inference_mode():
                unet_calls += record_calls(pipeline.unet, lambda: decoder_calls.extend(
                    record_calls(pipeline.vae.decoder, run)))
    calibration_id = f"stock:{CALIBRATION_ID}:steps{config.steps}"
    for module, calls, name in ((pipeline.unet, unet_calls, "stock UNet"),
                                (pipeline.vae.decoder, decoder_calls, "stock VAE decoder")):
        engine = OpenVINOModule(copy.deepcopy(module), config.precision, config.quantize,
                                calibration=(lambda calls=calls: calls) if calls else None,
                                calibration_id=calibration_id, name=name, notes=notes)
        # An instance attribute, not a submodule: nn.Module's __call__ (and the timing hooks) then run OpenVINO.
        module.__dict__["forward"] = engine
        module.__dict__["openvino_engine"] = engine


def make_runner(config: BenchConfig, device: str):
    return StockRunner(config, device) if config.backend == STOCK else GenimgRunner(config, device)


class FloorRunner:
    """The compute floor of a latent config: its own modules' forward passes alone, on ready-made inputs."""

    def __init__(self, runner: GenimgRunner):
        generator, config = runner.generator, runner.config
        self.generator, self.steps = generator, config.steps or generator.default_steps
        dtype, device, batch = generator.dtype, generator.device, config.batch_size
        self.tokens = generator.text.tokenizer([TIMING_PROMPT], padding="max_length", truncation=True,
                                               return_tensors="pt").to(device)
        context = generator.text.encode([TIMING_PROMPT]).tokens.expand(batch, -1, -1)
        guidance = generator.default_guidance
        # Classifier-free guidance doubles the UNet's batch, on the steps before the guidance cutoff.
        guided_steps = guided_step_count(self.steps, generator.options.guidance_cutoff)
        if guidance is None or guidance <= 1.0:
            guided_steps = 0
        both = torch.cat([generator.empty_context.expand_as(context), context])
        self.unet_calls = [(both if step < guided_steps else context) for step in range(self.steps)]
        self.unet_inputs = [torch.randn((c.shape[0], *generator.latent_shape)).to(device=device, dtype=dtype)
                            for c in self.unet_calls]
        self.latents = torch.randn((batch, *generator.latent_shape)).to(device=device, dtype=dtype)
        generator.scheduler.set_timesteps(self.steps, device=device)
        self.timestep = generator.scheduler.timesteps[0]

    def _timed(self, function) -> float:
        synchronize(self.generator.device)
        start = time.perf_counter()
        function()
        synchronize(self.generator.device)
        return (time.perf_counter() - start) * 1000

    @torch.inference_mode()
    def run(self) -> dict[str, float]:
        generator = self.generator

        def unet_passes():
            for unet_input, context in zip(self.unet_inputs, self.unet_calls):
                generator.unet(unet_input, self.timestep, encoder_hidden_states=context, return_dict=False)

        return {"text_encoder": self._timed(lambda: generator.text.model(**self.tokens)),
                "unet": self._timed(unet_passes), "decoder": self._timed(lambda: generator.decode_fn(self.latents))}
