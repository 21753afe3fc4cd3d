"""``python -m genimg bench``: latency, throughput, memory and prompt-match per backend and speed option.

How it measures (so the numbers can be trusted on a shared, noisy machine):

1. Every configuration is loaded fresh; load + its first generation is its *first-call cost* (torch.compile happens
   there, so compile time is never inside latency).
2. After warm-up, configurations are timed in interleaved rounds: each round runs every configuration once, so
   background load hits all of them alike. Latency is the median per image over rounds; spread is the IQR and min/max.
3. Stock diffusers ``StableDiffusionPipeline`` on the same embedded weights (fp32, the folder's scheduler, the same
   steps and guidance) runs in the same rounds; every latent row gets ``stock median / row median`` at the same batch.
4. The compute floor (the models' forward passes alone, on ready-made inputs, with the config's own modules) is timed
   interleaved with that config's end-to-end generation, and reported as a ratio.
5. Prompt-match (the judge's 0-100 score) is averaged over a fixed prompt list and seeds per configuration; it does not
   depend on batch size or on the prompt cache, so those rows share one score.
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time

import torch
from tqdm import tqdm

from genimg.bench.config import STOCK, BenchConfig, BenchSettings
from genimg.bench.engines import (add_pixel_differences, engine_targets, engine_winners, measure_unet_calls,
                                  uses_engines)
from genimg.bench.report import add_stock_ratios, check_targets, headline_rows
from genimg.bench.runners import FloorRunner, GenimgRunner, make_runner
from genimg.hardware import cpu_name
from genimg.options import SpeedOptions

def process_rss_bytes() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


def summarize(samples: list[float]) -> dict:
    quartiles = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return {"median": statistics.median(samples), "q1": quartiles[0], "q3": quartiles[2], "min": min(samples),
            "max": max(samples), "n": len(samples)}


def _bar(settings: BenchSettings, total: int, desc: str):
    return tqdm(total=total, desc=desc, disable=not settings.progress, leave=False)


def measure_first_calls(configs, settings: BenchSettings) -> tuple[list, list[dict]]:
    """Load every config fresh and run its first generation: the first-call cost, compile included."""
    runners, rows = [], []
    with _bar(settings, len(configs), "load + first call") as bar:
        for config in configs:
            runner = make_runner(config, settings.device)
            rss_before, start = process_rss_bytes(), time.perf_counter()
            runner.load()
            loaded = time.perf_counter()
            first = runner.run()
            done = time.perf_counter()
            rss_after = process_rss_bytes()
            rows.append({"config": dataclasses.asdict(config), "label": config.label, "backend": config.backend,
                         "batch_size": config.batch_size, "steps": first.info.get("steps"),
                         "guidance": first.info.get("guidance"), "options": config.options_label,
                         "load_ms": (loaded - start) * 1000, "first_generation_ms": (done - loaded) * 1000,
                         "first_call_ms": (done - start) * 1000, "notes": first.info.get("notes", []),
                         "rss_delta_mb": None if rss_before is None else (rss_after - rss_before) / 2**20})
            runners.append(runner)
            bar.update()
    return runners, rows


def measure_rounds(runners, rows, settings: BenchSettings) -> None:
    """Warm-up, then interleaved timed rounds; fills latency statistics, stages and peak memory into ``rows``."""
    samples = [[] for _ in runners]
    rounds = settings.warmup_rounds + settings.rounds
    with _bar(settings, rounds * len(runners), "timed rounds") as bar:
        for round_index in range(rounds):
            for runner, runner_samples in zip(runners, samples):
                generation = runner.run()
                if round_index >= settings.warmup_rounds:
                    runner_samples.append(generation)
                bar.update()
    for row, runner_samples in zip(rows, samples):
        batch = row["batch_size"]
        per_image = [g.timings["total"] / batch for g in runner_samples]
        row["latency_ms"] = summarize(per_image)
        row["call_ms"] = statistics.median(g.timings["total"] for g in runner_samples)
        row["images_per_s"] = 1000.0 / row["latency_ms"]["median"]
        stages = sorted({stage for g in runner_samples for stage in g.timings if stage != "total"})
        row["stages_ms"] = {stage: statistics.median(g.timings.get(stage, 0.0) / batch for g in runner_samples)
                            for stage in stages}
        peaks = [g.peak_memory for g in runner_samples if g.peak_memory is not None]
        row["peak_memory_mb"] = max(peaks) / 2**20 if peaks else None


def measure_floor(runner: GenimgRunner, row: dict, settings: BenchSettings) -> dict:
    """End-to-end generation and the bare forward passes of the same modules, interleaved round by round."""
    floor = FloorRunner(runner)
    end_to_end, parts = [], []
    for round_index in range(settings.warmup_rounds + settings.floor_rounds):
        generation, components = runner.run(), floor.run()
        if round_index >= settings.warmup_rounds:
            end_to_end.append(generation.timings["total"])
            parts.append(components)
    median = {name: statistics.median(p[name] for p in parts) for name in parts[0]}
    models_ms = median["unet"] + median["decoder"]
    text_runs = not runner.config.prompt_cache
    floor_ms = models_ms + (median["text_encoder"] if text_runs else 0.0)
    e2e = statistics.median(end_to_end)
    return {"label": row["label"], "batch_size": row["batch_size"], "steps": floor.steps,
            "components_ms": median, "floor_ms": floor_ms,
            "floor_with_text_encoder_ms": models_ms + median["text_encoder"], "end_to_end_ms": e2e,
            "ratio": e2e / floor_ms, "ratio_vs_floor_with_text_encoder": e2e / (models_ms + median["text_encoder"]),
            "text_encoder_in_floor": text_runs}


def score_configs(runners, rows, settings: BenchSettings) -> None:
    """Mean prompt-match over ``settings.prompts`` x ``images_per_prompt`` images, once per quality key.

    Images for one prompt come from one batch where possible; a compiled configuration keeps its own batch size, as
    another one would compile again.
    """
    from genimg.evaluate.judge import default_judge

    judge, scores = default_judge(), {}
    todo = {}
    for runner in runners:
        todo.setdefault(runner.config.quality_key, runner)
    with _bar(settings, len(todo) * len(settings.prompts), "prompt-match") as bar:
        for key, runner in todo.items():
            values = []
            batch = runner.config.batch_size if runner.config.compile else settings.images_per_prompt
            for prompt in settings.prompts:
                images, seed = [], 0
                while len(images) < settings.images_per_prompt:
                    images += runner.run(prompt, seed=seed, batch_size=batch).images
                    seed += 1
                values += judge.score(images[:settings.images_per_prompt], prompt)
                bar.update()
            scores[key] = statistics.mean(values)
    for runner, row in zip(runners, rows):
        row["score"] = scores[runner.config.quality_key]


def same_weights_check(runners) -> float | None:
    """Max pixel difference between stock diffusers and genimg fp32 at the same steps, seed and prompt (expect 0)."""
    import numpy as np

    stock = next((r for r in runners if r.config.backend == STOCK and r.config.batch_size == 1
                  and r.config == BenchConfig(STOCK, steps=r.config.steps)), None)  # plain fp32 on torch
    plain = stock and BenchConfig("latent", steps=stock.config.steps)
    genimg_runner = next((r for r in runners if stock and r.config == plain), None)
    if genimg_runner is None:
        return None
    ours, theirs = genimg_runner.run().images[0], stock.run().images[0]
    return float(np.abs(np.asarray(ours, dtype=np.int16) - np.asarray(theirs, dtype=np.int16)).max())


def machine_info(settings: BenchSettings) -> dict:
    import platform

    import diffusers

    cpu = cpu_name()
    device = SpeedOptions(device=settings.device).validated().device
    if device.startswith("cuda"):
        cpu += f"; GPU {torch.cuda.get_device_name()}"
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device,
            "inductor_cache": _inductor_cache_state(),
            "torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version(),
            "loadavg_start": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _inductor_cache_state() -> str:
    """'warm' when torch.compile's on-disk cache already holds work (then compile times in first calls are shorter)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        folder = cache_dir()
    except ImportError:
        return "unknown"
    return f"{'warm' if os.path.isdir(folder) and os.listdir(folder) else 'cold'} ({folder})"


def _allow_many_compiled_models() -> None:
    # Every compiled configuration is its own module instance; dynamo's default limit (8 per function) could
    # silently send later ones back to eager mode.
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(64, getattr(torch._dynamo.config, name)))


def _import_everything() -> None:
    """Pay Python's one-off imports up front, so the first configuration's first call is not charged for them."""
    import diffusers.pipelines.stable_diffusion  # noqa: F401
    import transformers.models.bert.modeling_bert  # noqa: F401

    import genimg.backends.gan  # noqa: F401
    import genimg.backends.latent  # noqa: F401
    import genimg.backends.vae  # noqa: F401
    import genimg.evaluate.judge  # noqa: F401


def run_bench(configs: list[BenchConfig], settings: BenchSettings = BenchSettings()) -> dict:
    """Measure ``configs``; returns the report (machine, settings, rows, floors, targets) as plain data."""
    _allow_many_compiled_models()
    _import_everything()
    machine = machine_info(settings)
    started = time.perf_counter()
    runners, rows = measure_first_calls(configs, settings)
    measure_rounds(runners, rows, settings)
    engines = {"unet_calls": measure_unet_calls(runners, settings)} if uses_engines(configs) else None
    add_stock_ratios(rows)
    floors = []
    for row in dict.fromkeys(r["label"] for r in headline_rows(rows) if r):
        index = next(i for i, r in enumerate(rows) if r["label"] == row)
        floors.append(measure_floor(runners[index], rows[index], settings))
    score_configs(runners, rows, settings)
    if engines is not None:
        add_pixel_differences(runners, rows, settings)
        engines.update(winners=engine_winners(rows), targets=engine_targets(rows, engines["unet_calls"]))
    machine["stock_vs_genimg_fp32_max_pixel_diff"] = same_weights_check(runners)
    machine["loadavg_end"] = os.getloadavg()
    machine["bench_seconds"] = time.perf_counter() - started
    report = {"machine": machine, "settings": dataclasses.asdict(settings), "rows": rows, "floors": floors,
              "targets": check_targets(rows, floors)}
    return dict(report, engines=engines) if engines is not None else report
