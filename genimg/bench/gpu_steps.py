"""The steps of the GPU check (``genimg.bench.gpu_check``): plain functions ``step(check) -> report``.

A report is a dict with ``passed`` (bool), ``rows`` (one dict per thing checked, each with its own ``passed``) and
anything else worth keeping; ``failures`` lists what went wrong in words. Every generator comes from
``genimg.load(...)``: the check verifies the product, not a copy of it. In tiny mode (``check.tiny``) the same steps
run on the CPU with tiny models and bf16 in place of fp16, so a broken step is caught before GPU time is spent.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PROMPT = "a red apple"
# Mean absolute pixel difference (0-255) allowed between a half-precision image and the CPU fp32 image of the same
# seed. Half precision changes every sum a little and a few denoising steps carry that forward; an image that is a
# different image (wrong weights, a replayed graph with stale inputs, wrong noise) is off by 30 levels or more.
HALF_PRECISION_TOLERANCE = {"fp16": 6.0, "bf16": 12.0, "fp32": 1.0}
# An image whose pixels barely vary or sit near black is the symptom of an fp16 overflow in a decoder.
MIN_STD, MIN_MEAN = 2.0, 8.0


@dataclass(frozen=True)
class Check:
    """Where and how the check runs: on CUDA at full size, or (tiny) on the CPU with tiny models."""

    out: Path
    workdir: Path
    tiny: bool = False

    @property
    def device(self) -> str:
        return "cpu" if self.tiny else "cuda"

    @property
    def precisions(self) -> tuple[str, ...]:
        return ("bf16",) if self.tiny else ("fp16", "bf16")  # fp16 is refused on a CPU

    @property
    def half(self) -> str:
        return self.precisions[0]

    def pipeline_folder(self) -> Path:
        """The SD-1.5-architecture pipeline folder for ``model=`` (tiny, or full width at 256x256), built once."""
        from genimg.bench.pipelines import SD15, save_pipeline, tiny

        folder = self.workdir / "sd15-pipeline"
        if not (folder / "model_index.json").exists():
            arch = tiny(SD15) if self.tiny else dataclasses.replace(
                SD15, unet=dict(SD15.unet, sample_size=32), vae=dict(SD15.vae, sample_size=256), resolution=256)
            save_pipeline(arch, folder)
        return folder


# backend -> (steps, load arguments beyond the speed options); "model" is the latent backend on a pipeline folder.
def backend_cases(check: Check) -> dict[str, tuple[int | None, dict]]:
    return {"gan": (None, {}), "vae": (None, {}), "latent": (2 if check.tiny else 4, {}), "latent-lcm": (2, {}),
            "model": (2 if check.tiny else 3, {"model": str(check.pipeline_folder())})}


def load(check: Check, case: str, precision: str, **speed_options):
    import genimg

    _, extra = backend_cases(check)[case]
    backend = "latent" if case == "model" else case
    return genimg.load(backend, device=check.device, precision=precision, **extra, **speed_options)


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.float32) for image in images])


def compare_to_cpu_fp32(check: Check, modes: dict[str, dict], cases: list[str] | None = None,
                        one_case_modes: tuple[str, ...] = ()) -> dict:
    """Every backend x precision x mode: images finite, not blank, within tolerance of the CPU fp32 image of the
    same seed. Each configuration runs twice; the second call (CUDA graphs replayed, compiled code reused) is
    the one compared. ``one_case_modes`` run for the first backend only (tiny mode: CUDA graphs are a CPU no-op)."""
    from genimg.registry import DEFAULT_CACHE

    rows, failures = [], []
    for index, case in enumerate(cases or list(backend_cases(check))):
        steps = backend_cases(check)[case][0]
        reference = _cpu_reference(check, case, steps)
        for precision in check.precisions:
            for mode, options in modes.items():
                if mode in one_case_modes and index > 0:
                    continue
                row = {"backend": case, "precision": precision, "mode": mode}
                started = time.perf_counter()
                try:
                    generator = load(check, case, precision, **options)
                    generator.generate(PROMPT, steps=steps, batch_size=2, seed=1)  # warm-up: capture, compile
                    row["first_call_s"] = time.perf_counter() - started
                    result = generator.generate(PROMPT, steps=steps, batch_size=2, seed=0)
                    images = pixels(result.images)
                    row.update(mean_abs_diff=float(np.abs(images - reference).mean()),
                               max_abs_diff=float(np.abs(images - reference).max()), std=float(images.std()),
                               total_ms=result.timings["total"], notes=result.info["notes"])
                    row["passed"] = (row["mean_abs_diff"] <= HALF_PRECISION_TOLERANCE[precision]
                                     and row["std"] > MIN_STD)
                except Exception as error:  # noqa: BLE001 - one failing configuration must not hide the others
                    row.update(passed=False, error=f"{type(error).__name__}: {error}"[:500])
                rows.append(row)
                if not row["passed"]:
                    failures.append(f"{case} {precision} {mode}: {row.get('error') or row}")
            DEFAULT_CACHE.clear()
            _free()
    return {"passed": not failures, "rows": rows, "failures": failures,
            "tolerance": {"mean_abs_diff_max": HALF_PRECISION_TOLERANCE, "std_min": MIN_STD}}


def _cpu_reference(check: Check, case: str, steps: int | None) -> np.ndarray:
    import genimg

    _, extra = backend_cases(check)[case]
    backend = "latent" if case == "model" else case
    generator = genimg.load(backend, device="cpu", precision="fp32", **extra)
    return pixels(generator.generate(PROMPT, steps=steps, batch_size=2, seed=0).images)


def _free() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def backends(check: Check) -> dict:
    """gan, vae, latent, latent-lcm and a model= SD-1.5-architecture pipeline, fp16 and bf16, plain and with CUDA
    graphs (on the CPU a no-op that says so), against the CPU fp32 image of the same seed."""
    return compare_to_cpu_fp32(check, {"plain": {}, "cuda_graphs": {"cuda_graphs": True}},
                               one_case_modes=("cuda_graphs",) if check.tiny else ())


def compiled(check: Check) -> dict:
    """The same comparison with torch.compile (with CUDA graphs on a GPU: mode='reduce-overhead'). Tiny mode
    compiles the GAN alone: inductor takes minutes per model on 2 CPU cores."""
    options = {"compile": True, "cuda_graphs": not check.tiny}
    return compare_to_cpu_fp32(check, {"compile": options}, cases=["gan"] if check.tiny else None)


def faults(check: Check) -> dict:
    """Out of memory gives genimg's clear error and the next request succeeds; half-precision VAE decoding gives no
    NaN or black images on a fixed set of prompts."""
    rows = [_out_of_memory(check)] + _half_precision_decoding(check)
    failures = [f"{row['check']}: {row.get('error') or row}" for row in rows if not row["passed"]]
    return {"passed": not failures, "rows": rows, "failures": failures}


def _out_of_memory(check: Check) -> dict:
    """On CUDA the allocator is capped at a little over what one image needs, so a batch of 16 runs out for real;
    on a CPU (tiny mode) the UNet raises the CPU allocator's error for batches over 4 (injected)."""
    import genimg

    row = {"check": "out of memory, then a request that fits", "how": "injected" if check.tiny else "allocator cap"}
    generator = load(check, "model", check.half)
    steps = backend_cases(check)["model"][0]
    restore = _cap_memory(generator, steps) if not check.tiny else _inject_cpu_oom(generator)
    try:
        try:
            generator.generate(PROMPT, steps=steps, batch_size=16, seed=0)
            row.update(passed=False, error="a batch of 16 did not run out of memory under the cap")
            return row
        except genimg.OutOfMemory as error:
            row["message"] = str(error)
        except Exception as error:  # noqa: BLE001 - anything else is the failure this step looks for
            row.update(passed=False, error=f"not genimg.OutOfMemory: {type(error).__name__}: {error}"[:500])
            return row
        result = generator.generate(PROMPT, steps=steps, batch_size=1, seed=0)
        row.update(passed="smaller than 16" in row["message"] and len(result.images) == 1,
                   next_request_ms=result.timings["total"])
        return row
    finally:
        restore()


def _cap_memory(generator, steps: int):
    """Caps this process's CUDA allocator at what is in use plus 3x what a batch of 1 adds."""
    _free()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    generator.generate(PROMPT, steps=steps, batch_size=1, seed=0)
    one_image = torch.cuda.max_memory_allocated() - base
    _free()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (base + 3 * one_image + 64 * 2**20) / total))
    return lambda: torch.cuda.set_per_process_memory_fraction(1.0)


def _inject_cpu_oom(generator):
    unet = generator.pipeline.unet

    def refuse_big_batches(module, args, kwargs):
        if args[0].shape[0] > 8:  # 4 images with guidance
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate (injected)")

    handle = unet.register_forward_pre_hook(refuse_big_batches, with_kwargs=True)
    return handle.remove


def _half_precision_decoding(check: Check) -> list[dict]:
    from genimg.bench.config import PROMPTS

    rows, prompts = [], list(PROMPTS[:4] if check.tiny else PROMPTS)
    for case, tiny_decoder in (("latent", False), ("latent-lcm", False), ("latent-lcm", True)):
        row = {"check": f"{check.half} decoding: {case}{' tiny decoder' if tiny_decoder else ''}",
               "prompts": len(prompts)}
        try:
            generator = load(check, case, check.half, tiny_decoder=tiny_decoder)
            steps = backend_cases(check)[case][0]
            results = generator.generate_batch(prompts, list(range(len(prompts))), steps=steps)
            images = pixels([result.images[0] for result in results])
            means, stds = images.mean(axis=(1, 2, 3)), images.std(axis=(1, 2, 3))
            row.update(min_mean=float(means.min()), min_std=float(stds.min()),
                       passed=bool((means > MIN_MEAN).all() and (stds > MIN_STD).all()))
        except Exception as error:  # noqa: BLE001 - NonFiniteOutput is the failure this looks for
            row.update(passed=False, error=f"{type(error).__name__}: {error}"[:500])
        rows.append(row)
    return rows


def app(check: Check) -> dict:
    """``python app.py`` (on the GPU when there is one), driven with gradio_client: /generate for every backend and
    for a model= pipeline folder, /compare with its default configurations, then /img2img (the autoencoder's
    encoder on the device) from a 64x64 picture."""
    from gradio_client import Client, handle_file
    from PIL import Image

    from genimg.serve.launch import LaunchedApp

    folder = check.pipeline_folder()
    os.environ["GENIMG_MODEL_DIRS"] = str(folder.parent)  # the app reads model folders from allowed places only
    precision = "fp32" if check.tiny else check.half
    rows = []
    with LaunchedApp(log_path=check.workdir / "app.log") as launched:
        client = Client(launched.url, verbose=False)
        for case, (steps, extra) in backend_cases(check).items():
            backend, model = ("latent", extra["model"]) if case == "model" else (case, "")
            rows.append(_call(f"/generate {case}", lambda: client.predict(
                PROMPT, backend, steps or 0, 2, precision, 0, model, api_name="/generate"), expected_images=2))
        rows.append(_call("/compare", lambda: client.predict(PROMPT, 0, api_name="/compare"), expected_images=4))
        picture = check.workdir / "start.png"
        Image.new("RGB", (64, 64), (220, 40, 40)).save(picture)
        rows.append(_call("/img2img", lambda: client.predict(handle_file(str(picture)), PROMPT, "latent-lcm", 0.5, 2,
                                                             0, api_name="/img2img"), expected_images=1))
    failures = [f"{row['endpoint']}: {row.get('error') or row}" for row in rows if not row["passed"]]
    return {"passed": not failures, "rows": rows, "failures": failures, "precision": precision}


def _call(endpoint: str, call, expected_images: int) -> dict:
    row = {"endpoint": endpoint}
    started = time.perf_counter()
    try:
        result = call()
        # A gallery is a list of {"image": path, ...}; /img2img answers one image's path.
        gallery = result[0] if isinstance(result[0], list) else [{"image": result[0]}]
        row.update(seconds=time.perf_counter() - started, images=len(gallery),
                   passed=len(gallery) == expected_images and all(Path(item["image"]).exists() for item in gallery))
        if endpoint.startswith(("/generate", "/img2img")):
            row["latency_report"] = result[1][:300]
            row["passed"] = row["passed"] and "ms" in result[1]
    except Exception as error:  # noqa: BLE001 - gr.Error arrives as gradio_client's AppError
        row.update(passed=False, error=f"{type(error).__name__}: {error}"[:500])
    return row


# Where the compile cache a step loads comes from: GENIMG_COMPILE_CACHE, else the cache committed beside the GPU
# reports (saved by an earlier check on the same GPU architecture; see assets/bench/gpu/README.md).
COMPILE_CACHE_ENV = "GENIMG_COMPILE_CACHE"
COMMITTED_COMPILE_CACHE = Path(__file__).resolve().parents[2] / "assets" / "bench" / "gpu" / "compile-cache"


# Where the compiled steps also keep their caches on the machine itself: a run's output folder may be a fresh one
# each time, while /tmp stays on the machine, so a later run's quantised rows reuse an earlier run's graphs.
MACHINE_COMPILE_CACHE = Path("/tmp/genimg-compile-cache")


def compile_cache_folder() -> Path:
    return Path(os.environ.get(COMPILE_CACHE_ENV) or COMMITTED_COMPILE_CACHE)


def machine_cache_folder(check: Check) -> Path:
    """The machine's own copy of this check's compile caches (tiny mode: inside the check's workdir)."""
    return check.workdir / "machine-compile-cache" if check.tiny else MACHINE_COMPILE_CACHE


def benchmark_compiled(check: Check) -> dict:
    """The compiled product path at batch 1, SD-Turbo first: genimg.load(..., compile=True) (max-autotune, CUDA
    graphs, channels_last, UNet and decoder compiled) against stock diffusers from the same noise, KL and tiny
    decoder rows. Loads the compile cache an earlier check saved and saves this run's beside the reports (tiny mode:
    the tiny SD-Turbo; inductor takes most of a minute per model on 2 CPU cores)."""
    scope = ["--architectures", "sd-turbo"] if check.tiny else ["--architectures", "sd-turbo", "sd15"]
    return _benchmark(check, "benchmark_compiled", ["--compile", "--batch-sizes", "1", *scope])


def warm_start(check: Check) -> dict:
    """The compile cache's worth in the same run: a fresh process with an empty inductor cache (as a fresh machine
    has) loads what benchmark_compiled just saved and times SD-Turbo's first compiled image (load + first call), the
    figure the next run starts from. Fails if there was nothing to load or a compiled graph missed the cache."""
    if not list(check.out.glob("benchmark_compiled.[0-9][0-9].bin")):
        return {"passed": False, "failures": [f"no compile cache from benchmark_compiled in {check.out}: run that "
                                              "step first"]}
    report = _benchmark(check, "warm_start", ["--compile", "--batch-sizes", "1", "--architectures", "sd-turbo",
                                              "--no-tiny-decoder"], rounds=3, cache_from=check.out, save=False)
    cache = report["compile_cache"] or {}
    if not cache.get("load", {}).get("loaded"):
        report["failures"].append(f"the compile cache did not load: {cache.get('load')}")
    if cache.get("hits", {}).get("fxgraph_cache_miss", 0):
        report["failures"].append(f"compiled graphs missed the loaded cache: {cache['hits']}")
    report["passed"] = not report["failures"]
    return report


def throughput(check: Check) -> dict:
    """Images/s at batch 8 and 32, compiled, SD-Turbo + tiny decoder and SD-1.5 4 steps, with each row's share of
    the card's dense fp16 peak (FLOPs per image by FlopCounterMode). Tiny mode: batch 2 and 3, no compile (the
    compiled path is benchmark_compiled's)."""
    if check.tiny:
        return _benchmark(check, "throughput", ["--no-compile", "--batch-sizes", "2", "3", "--architectures",
                                                "sd-turbo"])
    return _benchmark(check, "throughput", ["--compile", "--batch-sizes", "8", "32", "--architectures", "sd-turbo",
                                            "sd15"], rounds=3)


def benchmark(check: Check) -> dict:
    """``python -m genimg.bench.gpu`` with CUDA graphs, batch 1 and 8: genimg.load generators against stock
    diffusers on the SD-1.5 and SD-Turbo architectures (tiny ones in tiny mode)."""
    return _benchmark(check, "benchmark", ["--no-compile", "--batch-sizes", "1", "8"])


def quantized(check: Check) -> dict:
    """fp8 and int8 rows on the compiled product path: SD-Turbo, then SD-1.5, at batch 1, torchao int8 weight-only
    and fp8 dynamic (where the card has fp8 units) on the UNet and decoder: their speed-up over the compiled fp16 row
    (x compiled) and their pixel difference from stock, which is their cost (reported, not asserted). Tiny mode: the
    tiny SD-Turbo, CPU int8, no compile."""
    from genimg.options import cuda_supports_fp8

    if check.tiny:
        return _benchmark(check, "quantized", ["--architectures", "sd-turbo", "--no-tiny-decoder", "--batch-sizes",
                                               "1", "--quantize", "int8"])
    recipes = ["int8", "fp8"] if cuda_supports_fp8(torch.cuda.get_device_capability()) else ["int8"]
    return _benchmark(check, "quantized", ["--compile", "--batch-sizes", "1", "--architectures", "sd-turbo", "sd15",
                                           "--no-tiny-decoder", "--quantize", *recipes])


def bench_folder(check: Check, name: str) -> Path:
    """Where step ``name`` has the benchmark write its report as it goes (read back if the step runs out of time)."""
    return check.workdir / f"bench-{name}"


def _benchmark(check: Check, name: str, arguments: list[str], rounds: int = 10, cache_from: Path | None = None,
               save: bool = True) -> dict:
    from genimg.bench.gpu import main

    out = bench_folder(check, name)
    cache, compiled = [], "--compile" in arguments
    if compiled:  # compiled artefacts: loaded from an earlier check and this machine, saved beside the reports
        sources = [cache_from] if cache_from else [compile_cache_folder(), machine_cache_folder(check)]
        cache = ["--compile-cache-from", *map(str, sources)]
        cache += ["--compile-cache-to", str(check.out), "--compile-cache-name", name] if save else []
    try:
        main(arguments + (["--tiny", "--rounds", "1"] if check.tiny else ["--rounds", str(rounds)]) + cache +
             ["--out", str(out)])
    finally:
        if compiled and save:
            _keep_on_machine(check, name)
    return bench_report(out)


def _keep_on_machine(check: Check, name: str) -> None:
    """Copies step ``name``'s saved compile cache from OUT to the machine's own folder (replacing an older one)."""
    import shutil

    from genimg.accel.compile_cache import chunk_paths

    folder = machine_cache_folder(check)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in chunk_paths(folder, name):
        stale.unlink()
    for path in chunk_paths(check.out, name):
        shutil.copy2(path, folder / path.name)


def bench_report(out: Path) -> dict:
    """A step's report from the benchmark's JSON in ``out`` (whole, or as far as it got)."""
    import json

    from genimg.bench.gpu_report import check_targets, markdown

    report = json.loads((out / "gpu-bench.json").read_text())
    failures = [f"{result['architecture']} batch {result['batch_size']}: {row['label']} agrees with stock on only "
                f"{100 * row['pixels_within_8_of_stock']:.1f}% of pixels"
                for result in report["results"] for row in result["rows"]
                if not row.get("quantize") and row["pixels_within_8_of_stock"] < 0.99]
    targets = check_targets(report)
    return {"passed": not failures, "failures": failures, "bench": report, "markdown": markdown(report),
            "targets": [f"{t['target']}: {t['value']:.2f} ({t['row']}): {t['verdict']}" for t in targets],
            "compile_cache": report.get("compile_cache")}
