"""``python -m genimg.bench.gpu``: SD-1.5 and SD-Turbo architectures at 512x512 (random weights, built from configs
and saved as pipeline folders, nothing downloaded): stock diffusers against the generators users get from
``genimg.load("latent", model=folder, ...)``, the same objects the app serves.

Both sides read the same folder (same weights, same scheduler, steps and guidance) and draw from the same starting
noise, so their images can be compared: KL-decoder rows with stock diffusers, tiny-decoder rows with stock diffusers
decoding with the same AutoencoderTiny. genimg's rows: channels_last, fused QKV, CUDA graphs (on a GPU), then
torch.compile (on CUDA: max-autotune, UNet and decoder), then that with the tiny decoder, then each ``--quantize``
recipe. Loading, compile and CUDA-graph capture are reported as first-call cost (per batch size: each shape compiles
or captures once), never inside latency. FLOPs per image come from FlopCounterMode on the stock pipeline; with the
card's dense peak (``gpu_report.PEAK_DENSE_FP16_TFLOPS``) they give each row's share of the peak. The report is
rewritten after every first call and batch size; ``--compile-cache-to`` saves inductor's artefacts at the end, or
when SIGTERM (a time budget) stops the run (``--compile-cache-from`` loads them first: genimg.accel.compile_cache).

``--tiny`` shrinks every model so the whole script runs on a CPU in seconds (the tests and the GPU check's tiny mode
do that, so it is known to work before anybody spends GPU time). On a GPU: ``bash tools/gpu_check.sh OUT``.
"""
from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from genimg.bench.gpu_report import markdown, peak_tflops
from genimg.bench.pipelines import ARCHITECTURES, PROMPT, Architecture, build_components, save_pipeline, tiny


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class StockPath:
    """diffusers' pipeline as shipped, loaded from the folder: its text encoding every call, PIL output."""

    def __init__(self, arch: Architecture, folder: Path, device: str, dtype: torch.dtype,
                 tiny_decoder: str | None = None):
        from diffusers import AutoencoderTiny, DiffusionPipeline

        self.arch, self.label, self.notes, self.options = arch, "stock diffusers", [], {}
        self.pipeline = DiffusionPipeline.from_pretrained(folder, torch_dtype=dtype).to(device)
        if tiny_decoder:  # diffusers' own way to decode with TAESD: the tiny autoencoder in the VAE's place
            self.pipeline.vae = AutoencoderTiny.from_pretrained(tiny_decoder, torch_dtype=dtype).to(device)
            self.label, self.options = "stock diffusers + tiny decoder", {"tiny_decoder": tiny_decoder}
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
        # The default request budget is 4 SD images and 16 a request: the throughput rows go to batch 32.
        self.generator.max_pixels, self.generator.max_batch_size = 64 * arch.resolution ** 2, 64
        self.options = speed_options
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
    then the last KL-decoder row with each ``quantize`` recipe (int8, fp8), whose pixel column says what the recipe
    cost."""
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


def flops_per_image(path, device: str) -> float:
    """FLOPs of one image through ``path`` (a stock pipeline: text encoder, every UNet pass, decoder), counted by
    torch.utils.flop_counter.FlopCounterMode at batch 1."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        _timed(path, 1, device)
    return float(counter.get_total_flops())


def bench_architecture(arch: Architecture, device: str, precision: str, batch_sizes: list[int], rounds: int,
                       compile: bool, workdir: Path, log, tiny_decoder: bool = True, quantize: tuple = (),
                       checkpoint=lambda results, stage, first_call=None: None) -> list[dict]:
    """Per batch size: the first call of every path (load, compile, capture), then interleaved timed rounds.
    ``checkpoint(results, stage, first_call)`` runs after each path's first call ("compiled") and after each batch
    size's timed rounds ("timed"), so a run cut short keeps what it finished."""
    from genimg.options import SpeedOptions
    from genimg.registry import DEFAULT_CACHE

    dtype = SpeedOptions(precision=precision).torch_dtype
    folder = save_pipeline(arch, workdir / arch.name, build_components(arch, device=device), dtype=dtype)
    cuda = device.startswith("cuda")
    tiny_folder = str(folder / "tiny-decoder") if tiny_decoder else None
    makers = [lambda: StockPath(arch, folder, device, dtype)]
    if tiny_folder:  # the tiny-decoder rows' reference: stock diffusers with the same AutoencoderTiny
        makers.append(lambda: StockPath(arch, folder, device, dtype, tiny_decoder=tiny_folder))
    makers += [lambda options=options: GenimgPath(arch, folder, device, precision, **options)
               for options in genimg_rows(compile, cuda, tiny_folder, quantize)]
    paths, rows = [], []
    for make in makers:
        start = time.perf_counter()
        paths.append(make())
        rows.append({"label": paths[-1].label, "load_ms": (time.perf_counter() - start) * 1000,
                     "notes": paths[-1].notes, "quantize": paths[-1].options.get("quantize"),
                     "options": {key: value for key, value in paths[-1].options.items() if value}})
    stock_paths = [path for path in paths if isinstance(path, StockPath)]
    flops = {bool(path.options): flops_per_image(path, device) for path in stock_paths}  # by tiny decoder or not
    results = []
    for batch_size in batch_sizes:
        first_images, samples, first_calls = [], [[] for _ in paths], []
        for path, row in zip(paths, rows):
            first_ms, images = _timed(path, batch_size, device)
            first_calls.append(first_ms)
            first_images.append(images)
            log(f"{arch.name} batch {batch_size}: {path.label}: first call {first_ms / 1000:.1f} s")
            # Written row by row: a compile that runs out of time still leaves the first calls before it.
            checkpoint(results, "compiled", {"architecture": arch.name, "batch_size": batch_size, "label": row["label"],
                                             "load_ms": row["load_ms"], "first_call_ms": first_ms})
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for round_index in range(rounds + 1):  # round 0 is warm-up
            for path, path_samples in zip(paths, samples):
                elapsed, _ = _timed(path, batch_size, device)
                if round_index:
                    path_samples.append(elapsed / batch_size)
        references = {bool(path.options): images for path, images in zip(paths, first_images)
                      if isinstance(path, StockPath)}
        result_rows = []
        for path, row, path_samples, first_ms, images in zip(paths, rows, samples, first_calls, first_images):
            median = statistics.median(path_samples)
            tiny = bool(row["options"].get("tiny_decoder"))
            result_rows.append({**row, "first_call_ms": first_ms, "samples": path_samples,
                                "median_ms_per_image": median, "min_ms_per_image": min(path_samples),
                                "max_ms_per_image": max(path_samples), "images_per_s": 1000 / median,
                                **agreement(images, references.get(tiny, first_images[0])),
                                "flops_per_image": flops.get(tiny),
                                "stage_ms": _median_stages(getattr(path, "stage_ms", []), rounds)})
        add_ratios(result_rows)
        results.append({"architecture": arch.name,
                        "resolution": arch.resolution, "steps": arch.steps, "guidance": arch.guidance,
                        "batch_size": batch_size, "dtype": precision,
                        "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                        "rows": result_rows})
        checkpoint(results, "timed")
    del paths
    DEFAULT_CACHE.clear()  # the next architecture gets the device memory
    return results


def add_ratios(rows: list[dict]) -> None:
    """x stock (against stock diffusers with the KL decoder, the first row) and x compiled (against the compiled
    KL-decoder row: what int8, fp8 or the tiny decoder add on top of compile), for every row."""
    stock = rows[0]["median_ms_per_image"]
    compiled = next((row["median_ms_per_image"] for row in rows if row["options"].get("compile")
                     and not row["options"].get("quantize") and not row["options"].get("tiny_decoder")), None)
    for row in rows:
        row["speedup_vs_stock"] = stock / row["median_ms_per_image"]
        row["speedup_vs_compiled"] = compiled / row["median_ms_per_image"] if compiled else None


def add_peak_share(results: list[dict], peak: float | None) -> None:
    """Each row's achieved TFLOP/s (FLOPs per image x images/s) and its share of the card's dense peak."""
    for result in results:
        for row in result["rows"]:
            achieved = row["flops_per_image"] * row["images_per_s"] / 1e12 if row.get("flops_per_image") else None
            row["achieved_tflops"] = achieved
            row["peak_share"] = achieved / peak if achieved is not None and peak else None


def _median_stages(timings: list[dict], rounds: int) -> dict:
    """Median per stage over the timed rounds (genimg's own device-synced stage timer)."""
    timed = timings[-rounds:]
    return {stage: statistics.median(t[stage] for t in timed) for stage in (timed[0] if timed else {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg.bench.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on any device (a CPU smoke test)")
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--out", default="outputs/bench-gpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows (saves minutes)")
    parser.add_argument("--compile", action="store_true", help="the torch.compile rows even with --tiny")
    parser.add_argument("--no-tiny-decoder", action="store_true", help="leave out the tiny-decoder rows")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default=None, help="fp16 on CUDA, fp32 elsewhere unless given")
    parser.add_argument("--quantize", nargs="+", default=[], choices=["int8", "fp8"],
                        help="add the last KL-decoder row with each recipe (torchao; fp8 needs an Ada/Hopper GPU)")
    parser.add_argument("--compile-cache-from", metavar="DIR", nargs="*", default=[],
                        help="load every compile cache in these folders first")
    parser.add_argument("--compile-cache-to", metavar="DIR", help="save this run's compile cache to DIR as it goes")
    parser.add_argument("--compile-cache-name", default="bench", metavar="NAME", help="saved as DIR/NAME.NN.bin")
    args = parser.parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    from genimg.accel.compile_cache import cache_hits, load_compile_caches, save_compile_cache
    from genimg.options import resolve_device

    diffusers_logging.set_verbosity_error()  # "modules that should be kept in float32: []" per cast, and the like
    diffusers_logging.disable_progress_bar()
    device = resolve_device(args.device)
    precision = args.precision or ("fp16" if device.startswith("cuda") else "fp32")
    # Compiling even tiny models takes a minute or more on a CPU: --tiny leaves it out unless --compile asks.
    compile = args.compile or not (args.no_compile or args.tiny)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    report = {"device": name, "torch": torch.__version__, "peak_tflops": peak_tflops(name),
              "command": "python -m genimg.bench.gpu " + " ".join(argv if argv is not None else sys.argv[1:]),
              "results": [], "first_calls": []}
    if compile:  # before anything compiles: a warm cache skips code generation and autotuning
        report["compile_cache"] = {"load": load_compile_caches(*args.compile_cache_from)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    pending = [[]]  # the results of the architecture being measured, not yet in report["results"]

    def checkpoint(results: list[dict], stage: str, first_call: dict | None = None) -> None:
        """Writes the report so far (a run cut short keeps it); at the end (or stopped) the compile cache."""
        if stage == "stopped":
            results = pending[0]  # the current architecture's finished batch sizes
        pending[0] = results
        if first_call:
            report["first_calls"].append(first_call)
        # Once per process, at its end or when SIGTERM stops it: torch appends each save to the last, and
        # load_cache_artifacts keeps only the last save's artefacts (seen with torch 2.13: a run that saved after
        # every row loaded 1 of its 3 graphs).
        if compile and stage in ("done", "stopped") and args.compile_cache_to and "save" not in report["compile_cache"]:
            report["compile_cache"]["save"] = save_compile_cache(Path(args.compile_cache_to), args.compile_cache_name)
        if compile:
            report["compile_cache"]["hits"] = cache_hits()
        partial = dict(report, results=report["results"] + results)
        add_peak_share(partial["results"], report["peak_tflops"])
        (out / "gpu-bench.json").write_text(json.dumps(partial, indent=2, default=str))
        (out / "gpu-bench.md").write_text(markdown(partial))

    def stopped(signum, frame):
        """SIGTERM (the check's time budget ran out): keep the graphs compiled so far, then exit."""
        checkpoint([], "stopped")
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        with tempfile.TemporaryDirectory(prefix="genimg-bench-gpu-") as workdir:
            for arch_name in args.architectures:
                arch = tiny(ARCHITECTURES[arch_name]) if args.tiny else ARCHITECTURES[arch_name]
                report["results"] += bench_architecture(
                    arch, device, precision, args.batch_sizes, args.rounds, compile, Path(workdir),
                    log=lambda text: print(text, file=sys.stderr, flush=True), tiny_decoder=not args.no_tiny_decoder,
                    quantize=tuple(args.quantize), checkpoint=checkpoint)
                pending[0] = []
    finally:
        signal.signal(signal.SIGTERM, previous)
    checkpoint([], "done")
    print((out / "gpu-bench.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
