"""``python -m genimg.bench.gpu``: SD-1.5 and SD-Turbo architectures at 512x512 (random weights, built from configs
and saved as pipeline folders, nothing downloaded): stock diffusers against the generators users get from
``genimg.load("latent", model=folder, ...)``, the same objects the app serves.

Both sides read the same folder (same weights, same scheduler, steps and guidance) and draw from the same starting
noise, so their images can be compared. genimg's rows: channels_last, fused QKV, CUDA graphs (on a GPU), then
torch.compile, then the fastest of those with the tiny decoder (its own random weights: timing only). Loading,
compile and CUDA-graph capture are reported as first-call cost (per batch size: each shape compiles or captures
once), never inside latency.

``--tiny`` shrinks every model so the whole script runs on a CPU in seconds (the tests and the GPU check's tiny mode
do that, so it is known to work before anybody spends GPU time). On a GPU: ``bash tools/gpu_check.sh OUT``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from genimg.bench.pipelines import ARCHITECTURES, PROMPT, Architecture, build_components, save_pipeline, tiny


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class StockPath:
    """diffusers' pipeline as shipped, loaded from the folder: its text encoding every call, PIL output."""

    def __init__(self, arch: Architecture, folder: Path, device: str, dtype: torch.dtype):
        from diffusers import DiffusionPipeline

        self.arch, self.label, self.notes = arch, "stock diffusers", []
        self.pipeline = DiffusionPipeline.from_pretrained(folder, torch_dtype=dtype).to(device)
        self.pipeline.set_progress_bar_config(disable=True)

    def __call__(self, batch_size: int, seed: int = 0):
        from genimg.backends.base import seeded_noise

        # The starting noise is handed over, drawn as genimg draws it (fp32 on the CPU, then cast): left to itself
        # the pipeline draws fp16 noise, a different sequence, and the images could not be compared. Drawing it is
        # timed on both sides. Step noise (ancestral and LCM schedulers) comes from a CPU generator, as genimg's does.
        unet = self.pipeline.unet
        noise = seeded_noise((batch_size, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size),
                             seed, unet.device.type, unet.dtype)
        return self.pipeline(PROMPT, num_inference_steps=self.arch.steps, guidance_scale=self.arch.guidance,
                             num_images_per_prompt=batch_size, latents=noise,
                             generator=torch.Generator().manual_seed(seed)).images


class GenimgPath:
    """A generator from ``genimg.load("latent", model=folder, ...)``: the product path, nothing bench-only."""

    def __init__(self, arch: Architecture, folder: Path, device: str, precision: str, **speed_options):
        import genimg

        self.arch = arch
        self.generator = genimg.load("latent", device=device, precision=precision, model=str(folder), **speed_options)
        self.generator.max_pixels = 16 * arch.resolution ** 2  # the default request budget is 4 SD images
        flags = [name for name in ("channels_last", "fuse_qkv", "cuda_graphs", "compile") if speed_options.get(name)]
        quantize = f" + {speed_options['quantize']}" if speed_options.get("quantize") else ""
        tiny_decoder = " + tiny decoder" if speed_options.get("tiny_decoder") else ""
        self.label = f"genimg.load {precision} " + "+".join(flags) + quantize + tiny_decoder
        self.notes, self.stage_ms = self.generator.notes, []
        self.quantize = speed_options.get("quantize")

    def __call__(self, batch_size: int, seed: int = 0):
        result = self.generator.generate(PROMPT, steps=self.arch.steps, batch_size=batch_size, seed=seed,
                                         guidance=self.arch.guidance)
        self.stage_ms.append(result.timings)
        return result.images


def _timed(path, batch_size: int, device: str) -> tuple[float, list]:
    synchronize(device)
    start = time.perf_counter()
    images = path(batch_size)
    synchronize(device)
    return (time.perf_counter() - start) * 1000, images


def genimg_rows(compile: bool, cuda: bool, tiny_decoder: str | None, quantize: tuple = ()) -> list[dict]:
    """The speed options of genimg's rows: CUDA graphs (GPU), then compile, then the last of them + tiny decoder,
    then the last KL-decoder row with each ``quantize`` recipe (int8, fp8: the quantised GPU rows, whose pixel column
    says what the recipe cost)."""
    base = dict(channels_last=True, fuse_qkv=True, cuda_graphs=cuda)
    rows = [base] + ([dict(base, compile=True)] if compile else [])
    quantized = [dict(rows[-1], quantize=recipe) for recipe in quantize]
    return rows + ([dict(rows[-1], tiny_decoder=tiny_decoder)] if tiny_decoder else []) + quantized


def agreement(images: list, reference: list) -> dict:
    import numpy as np

    difference = np.abs(np.asarray(images[0], dtype=np.int16) - np.asarray(reference[0], dtype=np.int16))
    # One outlying pixel sets the maximum; the share of pixels within 8 levels says whether the images agree.
    return {"max_pixel_diff_vs_stock": float(difference.max()),
            "pixels_within_8_of_stock": float((difference <= 8).mean())}


def bench_architecture(arch: Architecture, device: str, precision: str, batch_sizes: list[int], rounds: int,
                       compile: bool, workdir: Path, log, tiny_decoder: bool = True,
                       quantize: tuple = ()) -> list[dict]:
    """Per batch size: the first call of every path (load, compile, capture) and interleaved timed rounds."""
    from genimg.options import SpeedOptions
    from genimg.registry import DEFAULT_CACHE

    dtype = SpeedOptions(precision=precision).torch_dtype
    folder = save_pipeline(arch, workdir / arch.name, build_components(arch, device=device), dtype=dtype)
    cuda = device.startswith("cuda")
    makers = [lambda: StockPath(arch, folder, device, dtype)] + [
        lambda options=options: GenimgPath(arch, folder, device, precision, **options)
        for options in genimg_rows(compile, cuda, str(folder / "tiny-decoder") if tiny_decoder else None, quantize)]
    paths, rows = [], []
    for make in makers:
        start = time.perf_counter()
        paths.append(make())
        rows.append({"label": paths[-1].label, "load_ms": (time.perf_counter() - start) * 1000,
                     "notes": paths[-1].notes, "quantize": getattr(paths[-1], "quantize", None)})
    results = []
    for batch_size in batch_sizes:
        first_images, samples, first_calls = [], [[] for _ in paths], []
        for path in paths:
            first_ms, images = _timed(path, batch_size, device)
            first_calls.append(first_ms)
            first_images.append(images)
            log(f"{arch.name} batch {batch_size}: {path.label}: first call {first_ms / 1000:.1f} s")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for round_index in range(rounds + 1):  # round 0 is warm-up
            for path, path_samples in zip(paths, samples):
                elapsed, _ = _timed(path, batch_size, device)
                if round_index:
                    path_samples.append(elapsed / batch_size)
        stock = statistics.median(samples[0])
        result_rows = []
        for path, row, path_samples, first_ms, images in zip(paths, rows, samples, first_calls, first_images):
            median = statistics.median(path_samples)
            result_rows.append({**row, "first_call_ms": first_ms, "samples": path_samples,
                                "median_ms_per_image": median, "min_ms_per_image": min(path_samples),
                                "max_ms_per_image": max(path_samples), "images_per_s": 1000 / median,
                                "speedup_vs_stock": stock / median, **agreement(images, first_images[0]),
                                "stage_ms": _median_stages(getattr(path, "stage_ms", []), rounds)})
        results.append({"architecture": arch.name, "resolution": arch.resolution, "steps": arch.steps,
                        "guidance": arch.guidance, "batch_size": batch_size, "dtype": precision,
                        "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                        "rows": result_rows})
    del paths
    DEFAULT_CACHE.clear()  # the next architecture gets the device memory
    return results


def _median_stages(timings: list[dict], rounds: int) -> dict:
    """Median per stage over the timed rounds (genimg's own device-synced stage timer)."""
    timed = timings[-rounds:]
    return {stage: statistics.median(t[stage] for t in timed) for stage in (timed[0] if timed else {})}


def markdown(report: dict) -> str:
    lines = [f"# genimg GPU benchmark: {report['device']}", "", "```", report["command"], "```", "",
             "Random weights, architectures built from configs and saved as pipeline folders; genimg's rows are "
             "`genimg.load(\"latent\", model=folder, ...)` generators. Median ms per image over interleaved rounds "
             "after warm-up; first call = the first generation at that batch size (compile and CUDA-graph capture "
             "happen there; loading is apart). Pixels within 8 levels of stock: the same noise through the same "
             "weights; the tiny decoder has its own random weights, so its images differ.", ""]
    for result in report["results"]:
        lines += [f"## {result['architecture']}: {result['resolution']}x{result['resolution']}, {result['steps']} "
                  f"steps, guidance {result['guidance']}, batch {result['batch_size']}, {result['dtype']}", "",
                  "| path | ms / image (min-max) | images/s | x stock | first call s | load s | pixels within 8"
                  " of stock |",
                  "|---|---|---|---|---|---|---|"]
        for row in result["rows"]:
            lines.append(f"| {row['label']} | {row['median_ms_per_image']:.1f} ({row['min_ms_per_image']:.1f}-"
                         f"{row['max_ms_per_image']:.1f}) | {row['images_per_s']:.1f} | "
                         f"{row['speedup_vs_stock']:.2f} | {row['first_call_ms'] / 1000:.1f} | "
                         f"{row['load_ms'] / 1000:.1f} | {100 * row['pixels_within_8_of_stock']:.1f}% |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg.bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on any device (a CPU smoke test)")
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--out", default="outputs/bench-gpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows (saves minutes)")
    parser.add_argument("--compile", action="store_true", help="the torch.compile rows even with --tiny")
    parser.add_argument("--no-tiny-decoder", action="store_true", help="leave out the tiny-decoder row")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default=None, help="fp16 on CUDA, fp32 elsewhere unless given")
    parser.add_argument("--quantize", nargs="+", default=[], choices=["int8", "fp8"],
                        help="add the last KL-decoder row with each recipe (torchao; fp8 needs an Ada/Hopper GPU)")
    args = parser.parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    from genimg.options import resolve_device

    diffusers_logging.set_verbosity_error()  # "modules that should be kept in float32: []" per cast, and the like
    diffusers_logging.disable_progress_bar()
    device = resolve_device(args.device)
    precision = args.precision or ("fp16" if device.startswith("cuda") else "fp32")
    # Compiling even tiny models takes a minute or more on a CPU: --tiny leaves it out unless --compile asks.
    compile = args.compile or not (args.no_compile or args.tiny)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    report = {"device": name, "torch": torch.__version__, "command": "python -m genimg.bench.gpu " + " ".join(
        argv if argv is not None else sys.argv[1:]), "results": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="genimg-bench-gpu-") as workdir:
        for arch_name in args.architectures:
            arch = tiny(ARCHITECTURES[arch_name]) if args.tiny else ARCHITECTURES[arch_name]
            report["results"] += bench_architecture(arch, device, precision, args.batch_sizes, args.rounds, compile,
                                                    Path(workdir), log=lambda text: print(text, file=sys.stderr,
                                                                                          flush=True),
                                                    tiny_decoder=not args.no_tiny_decoder,
                                                    quantize=tuple(args.quantize))
            # Written after every architecture, so a run cut short by a time limit still leaves its results.
            (out / "gpu-bench.json").write_text(json.dumps(report, indent=2, default=str))
            (out / "gpu-bench.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
