"""``python -m genimg.bench.gpu``: SD-1.5 and SD-Turbo architectures at 512x512 (random weights, built from configs
written here, nothing downloaded): stock diffusers fp16 against genimg's fastest path on identical modules.

genimg's path: the same UNet/VAE/text encoder (same seed, same weights), fp16, channels_last, fused QKV, the prompt
embedding computed once and cached, genimg's sampling loop with the same scheduler, steps and guidance; then either
CUDA graphs alone or torch.compile (inductor freezing) with CUDA graphs; optionally the tiny decoder (TAESD-sized,
random weights: timing only). Compile/capture time is reported as first-call cost, never inside latency.

``--tiny`` shrinks every model so the whole script runs on a CPU in seconds (the test does that, so the script is
known to work before anybody spends GPU time). On a lent GPU, in one call: ``bash tools/gpu_bench.sh OUT_DIR``.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

PROMPT = "a photograph of an astronaut riding a horse"


@dataclass(frozen=True)
class Architecture:
    name: str
    unet: dict
    text: dict
    scheduler: str  # diffusers scheduler class name
    scheduler_config: dict
    steps: int
    guidance: float
    resolution: int = 512
    vae: dict = field(default_factory=lambda: dict(
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.18215))
    tiny_decoder: dict = field(default_factory=dict)  # AutoencoderTiny defaults are TAESD's


SD_SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                   steps_offset=1)
SD15 = Architecture(
    "sd15",
    unet=dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
              layers_per_block=2),
    text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, vocab_size=49408,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768),
    scheduler="DPMSolverMultistepScheduler", scheduler_config=dict(SD_SCHEDULE, algorithm_type="dpmsolver++"),
    steps=4, guidance=7.5)  # the target is set at 4 steps (with classifier-free guidance: 2 UNet rows a step)
SD_TURBO = Architecture(
    "sd-turbo",
    unet=dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=1024,
              attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, layers_per_block=2),
    text=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
              vocab_size=49408, max_position_embeddings=77, hidden_act="gelu", projection_dim=1024),
    scheduler="EulerDiscreteScheduler", scheduler_config=dict(SD_SCHEDULE, timestep_spacing="trailing"),
    steps=1, guidance=0.0)
ARCHITECTURES = {arch.name: arch for arch in (SD15, SD_TURBO)}


def tiny(arch: Architecture) -> Architecture:
    """The same architecture family shrunk to seconds on a CPU (64x64 images, 8x8 latents)."""
    turbo = arch.name == "sd-turbo"
    unet = dict(sample_size=8, block_out_channels=(32, 64), cross_attention_dim=32, layers_per_block=1,
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                attention_head_dim=(2, 4) if turbo else 8, use_linear_projection=turbo)
    text = dict(arch.text, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                vocab_size=1000, projection_dim=32)
    vae = dict(block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=4, sample_size=64,
               down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
               scaling_factor=0.18215)
    tiny_decoder = dict(encoder_block_out_channels=(16,) * 4, decoder_block_out_channels=(16,) * 4,
                        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
    return Architecture(arch.name + "-tiny", unet, text, arch.scheduler, arch.scheduler_config, min(arch.steps, 2),
                        arch.guidance, 64, vae, tiny_decoder)


def byte_level_tokenizer():
    """A CLIP tokenizer without merges (every character is a token): real tokenization, nothing downloaded."""
    from transformers import CLIPTokenizer

    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable + [256 + n for n in range(256 - len(printable))]
    chars = [chr(code) for code in codes]
    tokens = chars + [char + "</w>" for char in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[], model_max_length=77)


def build_components(arch: Architecture, seed: int = 0, device: str = "cpu") -> dict:
    """Random-weight fp32 models of ``arch``, initialised on ``device`` (fast for SD sizes on a GPU); same seed, same
    weights."""
    import diffusers
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    with torch.device(device):
        models = {"unet": UNet2DConditionModel(**arch.unet).eval(), "vae": AutoencoderKL(**arch.vae).eval(),
                  "text_encoder": CLIPTextModel(CLIPTextConfig(**arch.text)).eval(),
                  "tiny_decoder": AutoencoderTiny(**arch.tiny_decoder).eval()}
    # Outside the device context: schedulers keep their tables on the CPU (diffusers calls .numpy() on them).
    return {**models, "tokenizer": byte_level_tokenizer(),
            "scheduler": getattr(diffusers, arch.scheduler)(**arch.scheduler_config)}


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class StockPath:
    """diffusers StableDiffusionPipeline as shipped: fp16, its text encoding every call, PIL output."""

    def __init__(self, arch: Architecture, components: dict, device: str, dtype: torch.dtype):
        from diffusers import StableDiffusionPipeline

        parts = {k: components[k] for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
        self.arch, self.label = arch, "stock diffusers"
        self.pipeline = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                                requires_safety_checker=False).to(device, dtype)
        self.pipeline.set_progress_bar_config(disable=True)

    def __call__(self, batch_size: int, seed: int = 0):
        from genimg.backends.base import seeded_noise

        # The starting noise is handed over, drawn as genimg draws it (fp32 on the CPU, then cast): left to itself
        # the pipeline draws fp16 noise, which torch 2.11 (the H100 run) draws as a different sequence from fp32, so
        # the images could not be compared. Drawing it is timed in both paths.
        unet = self.pipeline.unet
        noise = seeded_noise((batch_size, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size),
                             seed, unet.device.type, unet.dtype)
        return self.pipeline(PROMPT, num_inference_steps=self.arch.steps, guidance_scale=self.arch.guidance,
                             height=self.arch.resolution, width=self.arch.resolution, num_images_per_prompt=batch_size,
                             latents=noise).images


class GenimgPath:
    """genimg's fast path on its own copy of the same modules."""

    def __init__(self, arch: Architecture, components: dict, device: str, dtype: torch.dtype, compile: bool,
                 cuda_graphs: bool):
        from genimg.accel import prepare_module
        from genimg.options import SpeedOptions
        from genimg.sampling import make_scheduler

        precision = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype]
        self.options = SpeedOptions(device=device, precision=precision, compile=compile, channels_last=True,
                                    fuse_qkv=True, cuda_graphs=cuda_graphs)
        self.arch, self.device, self.dtype, self.notes = arch, device, dtype, []
        self.label = "genimg " + "+".join([precision, "channels_last", "fused QKV", "prompt cache"]
                                          + (["compile"] if compile else []) + (["CUDA graphs"] if cuda_graphs else []))
        self.tokenizer = components["tokenizer"]
        self.text_encoder = copy.deepcopy(components["text_encoder"]).to(device=device, dtype=dtype)
        unet = copy.deepcopy(components["unet"]).to(device=device, dtype=dtype)
        self.latent_shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
        self.unet = prepare_module(unet, self.options, self.notes, name="UNet")
        self._set_decoder(components["vae"], name="decoder")
        self.scheduler = make_scheduler(_scheduler_key(arch.scheduler), components["scheduler"].config)
        self.cache: dict[str, torch.Tensor] = {}

    def _set_decoder(self, autoencoder, name: str) -> None:
        from genimg.accel import prepare_module

        decoder = copy.deepcopy(autoencoder).to(device=self.device, dtype=self.dtype)
        self.latent_scale = getattr(decoder.config, "scaling_factor", 1.0)
        self.decode = prepare_module(_Decode(decoder), self.options, self.notes, name=name)

    def with_tiny_decoder(self, components: dict) -> "GenimgPath":
        """The same UNet, text encoder and prompt cache, decoding with the tiny decoder (its own random weights)."""
        path = copy.copy(self)
        path.notes = list(self.notes)
        path._set_decoder(components["tiny_decoder"], name="tiny decoder")
        path.latent_scale = 1.0  # the tiny decoder reads the UNet's latents as they are
        path.label = self.label + "+tiny decoder"
        return path

    @torch.inference_mode()
    def embed(self, prompt: str) -> torch.Tensor:
        if prompt not in self.cache:
            ids = self.tokenizer([prompt], padding="max_length", max_length=self.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids.to(self.device)
            self.cache[prompt] = self.text_encoder(ids)[0]
        return self.cache[prompt]

    @torch.inference_mode()
    def __call__(self, batch_size: int, seed: int = 0):
        from genimg.backends.base import seeded_noise, to_pil
        from genimg.sampling import denoise

        context = self.embed(PROMPT).expand(batch_size, -1, -1)
        empty = self.embed("").expand(batch_size, -1, -1) if self.arch.guidance > 1.0 else None
        noise = seeded_noise((batch_size, *self.latent_shape), seed, self.device, self.dtype)
        generator = torch.Generator(self.device).manual_seed(seed)
        latents = denoise(self.unet, self.scheduler, noise, context, self.arch.steps, self.arch.guidance,
                          empty, generator)
        return to_pil(self.decode(latents / self.latent_scale))


class _Decode(torch.nn.Module):
    def __init__(self, autoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, latents):
        return self.autoencoder.decode(latents, return_dict=False)[0]


def _scheduler_key(class_name: str) -> str:
    from genimg.sampling import SCHEDULERS

    return next(key for key, (cls, _) in SCHEDULERS.items() if cls.__name__ == class_name)


def _timed(path, batch_size: int, device: str) -> tuple[float, list]:
    synchronize(device)
    start = time.perf_counter()
    images = path(batch_size)
    synchronize(device)
    return (time.perf_counter() - start) * 1000, images


def bench_architecture(arch: Architecture, device: str, dtype: torch.dtype, batch_size: int, rounds: int,
                       compile: bool, log) -> dict:
    """First call (load/compile/capture) and interleaved timed rounds of stock vs genimg paths."""
    import numpy as np

    components = build_components(arch, device=device)
    cuda = device.startswith("cuda")
    makers = [lambda: StockPath(arch, components, device, dtype),
              lambda: GenimgPath(arch, components, device, dtype, compile=False, cuda_graphs=cuda)]
    if compile:
        makers.append(lambda: GenimgPath(arch, components, device, dtype, compile=True, cuda_graphs=cuda))
    makers.append(lambda: paths[-1][0].with_tiny_decoder(components))  # the fastest genimg path, tiny decoder
    paths, rows = [], []
    for make in makers:
        start = time.perf_counter()
        path = make()
        first_ms, images = _timed(path, batch_size, device)
        paths.append((path, images))
        rows.append({"label": path.label, "first_call_ms": (time.perf_counter() - start) * 1000,
                     "notes": getattr(path, "notes", []), "samples": []})
        log(f"{arch.name}: {path.label}: first call {rows[-1]['first_call_ms'] / 1000:.1f} s")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for round_index in range(rounds + 1):  # round 0 is warm-up
        for (path, _), row in zip(paths, rows):
            elapsed, _ = _timed(path, batch_size, device)
            if round_index:
                row["samples"].append(elapsed / batch_size)
    stock = statistics.median(rows[0]["samples"])
    reference = np.asarray(paths[0][1][0], dtype=np.int16)
    for (path, images), row in zip(paths, rows):
        row["median_ms_per_image"] = statistics.median(row["samples"])
        row["min_ms_per_image"], row["max_ms_per_image"] = min(row["samples"]), max(row["samples"])
        row["speedup_vs_stock"] = stock / row["median_ms_per_image"]
        difference = np.abs(np.asarray(images[0], dtype=np.int16) - reference)
        row["max_pixel_diff_vs_stock"] = float(difference.max())
        # One outlying pixel sets the maximum; the share of pixels within 8 levels says whether the images agree.
        row["pixels_within_8_of_stock"] = float((difference <= 8).mean())
    return {"architecture": arch.name, "resolution": arch.resolution, "steps": arch.steps,
            "guidance": arch.guidance, "batch_size": batch_size, "dtype": str(dtype).replace("torch.", ""),
            "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None, "rows": rows}


def markdown(report: dict) -> str:
    lines = [f"# genimg GPU benchmark: {report['device']}", "", "```", report["command"], "```", "",
             "Random weights, architectures built from configs. Median ms per image over interleaved rounds after "
             "warm-up; first call = build + first generation (compile and CUDA-graph capture happen there). "
             "Pixels within 8 levels of stock show the same modules give (nearly) the same images; the tiny decoder has its "
             "own random weights, so its images differ.", ""]
    for result in report["results"]:
        lines += [f"## {result['architecture']}: {result['resolution']}x{result['resolution']}, {result['steps']} "
                  f"steps, guidance {result['guidance']}, batch {result['batch_size']}, {result['dtype']}", "",
                  "| path | ms / image (min-max) | x stock | first call s | pixels within 8 levels of stock |",
                  "|---|---|---|---|---|"]
        for row in result["rows"]:
            lines.append(f"| {row['label']} | {row['median_ms_per_image']:.1f} ({row['min_ms_per_image']:.1f}-"
                         f"{row['max_ms_per_image']:.1f}) | {row['speedup_vs_stock']:.2f} | "
                         f"{row['first_call_ms'] / 1000:.1f} | {100 * row['pixels_within_8_of_stock']:.1f}% |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg.bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on any device (a CPU smoke test)")
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--out", default="outputs/bench-gpu")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile path (saves minutes)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    from genimg.options import resolve_device

    diffusers_logging.set_verbosity_error()  # "modules that should be kept in float32: []" per cast, and the like

    device = resolve_device(args.device)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32  # fp16 is unusably slow on CPUs
    compile = not args.no_compile and not args.tiny  # compiling even tiny models takes minutes on a CPU
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    report = {"device": name, "torch": torch.__version__, "command": "python -m genimg.bench.gpu " + " ".join(
        argv if argv is not None else sys.argv[1:]), "results": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for arch_name in args.architectures:
        arch = tiny(ARCHITECTURES[arch_name]) if args.tiny else ARCHITECTURES[arch_name]
        report["results"].append(bench_architecture(arch, device, dtype, args.batch_size, args.rounds, compile,
                                                    log=lambda text: print(text, file=sys.stderr, flush=True)))
        # Written after every architecture, so a run cut short by a time limit still leaves its results.
        (out / "gpu-bench.json").write_text(json.dumps(report, indent=2, default=str))
        (out / "gpu-bench.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
