"""The CPU engine race: genimg on torch and on OpenVINO, fp32, bf16 and int8, against stock diffusers and
stock diffusers with its UNet and VAE decoder run by OpenVINO (fp32/bf16, NNCF int8: how FastSD CPU runs models).

Every row gets its pixel difference from fp32 of the same configuration (what a millisecond cost), the UNet of every
latent row is timed per call at batch 2 (a guided step), interleaved, and the report says which engine wins per
backend there.
"""
from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np
import torch

from genimg.bench.config import STOCK, BenchConfig, BenchSettings
from genimg.bench.runners import make_runner
from genimg.timing import synchronize

PIXEL_PROMPTS = 4


def engine_sweep(steps: int = 4, big_batch: int = 8) -> list[BenchConfig]:
    """The engine rows; 30-60 minutes on 2 busy CPU cores, most of it torch.compile, conversion and calibration.
    (bf16 + compile is in the full sweep; on the 2-core Zen 4 EPYC it ran the UNet at 15.4 ms, OpenVINO bf16
    at 12.8.)"""
    s, ov, cut = steps, dict(engine="openvino"), dict(guidance_cutoff=0.5)
    lcm = dict(steps=1, tiny_decoder=True, batch_size=big_batch)
    return [
        BenchConfig(STOCK, steps=s), BenchConfig(STOCK, steps=s, **ov),
        BenchConfig(STOCK, steps=s, precision="bf16", **ov), BenchConfig(STOCK, steps=s, quantize="int8", **ov),
        BenchConfig("latent", steps=s), BenchConfig("latent", steps=s, compile=True, **cut),
        BenchConfig("latent", steps=s, compile=True, quantize="int8", **cut),
        BenchConfig("latent", steps=s, **ov), BenchConfig("latent", steps=s, precision="bf16", **ov),
        BenchConfig("latent", steps=s, quantize="int8", **ov),
        BenchConfig("latent", steps=s, precision="bf16", **cut, **ov),
        BenchConfig("latent", steps=s, quantize="int8", **cut, **ov),
        BenchConfig("latent-lcm", compile=True, **lcm), BenchConfig("latent-lcm", precision="bf16", **lcm, **ov),
        BenchConfig("latent-lcm", quantize="int8", **lcm, **ov),
        BenchConfig("gan", compile=True, channels_last=True), BenchConfig("gan", **ov),
        BenchConfig("gan", quantize="int8", **ov),
        # pruning: the pruned weights alone, and stacked on the fastest engine settings
        BenchConfig("latent", steps=s, pruned=True), BenchConfig("latent", steps=s, pruned=True, **cut, **ov),
        BenchConfig("latent", steps=s, quantize="int8", pruned=True, **cut, **ov),
        BenchConfig("gan", pruned=True), BenchConfig("gan", quantize="int8", pruned=True, **ov),
    ]


def race_sweep(steps: int = 4) -> list[BenchConfig]:
    """The rows the race's end-to-end target is read from, on an idle machine: the fastest peer (stock diffusers with
    its UNet and decoder on OpenVINO NNCF int8) with OpenVINO running the rest in f32 (genimg's ``fp32``) and in bf16
    (OpenVINO's own default where the CPU has bf16 units, as FastSD CPU leaves it), against genimg's fastest settings
    on the same weights and steps. 10-20 minutes on 2 cores, less once the conversions are in the disk cache."""
    s, ov, cut = steps, dict(engine="openvino", quantize="int8"), dict(guidance_cutoff=0.5)
    bf16 = dict(precision="bf16")
    return [
        BenchConfig(STOCK, steps=s), BenchConfig(STOCK, steps=s, **ov), BenchConfig(STOCK, steps=s, **ov, **bf16),
        BenchConfig("latent", steps=s), BenchConfig("latent", steps=s, compile=True, **cut),
        BenchConfig("latent", steps=s, **ov), BenchConfig("latent", steps=s, **ov, **bf16),
        BenchConfig("latent", steps=s, **ov, **cut), BenchConfig("latent", steps=s, **ov, **bf16, **cut),
        # Guidance on the first step alone: one batch-2 UNet call instead of two; its prompt-match says what it cost.
        BenchConfig("latent", steps=s, guidance_cutoff=0.25, **ov, **bf16),
        # ... and with a new prompt every call (the rows above reuse the cached prompt embedding, as the peer cannot).
        BenchConfig("latent", steps=s, guidance_cutoff=0.25, prompt_cache=False, **ov, **bf16),
        # the fp32 references of the cutoff rows: their prompt-match is what "within 2 points of fp32" is read against
        BenchConfig("latent", steps=s, **cut), BenchConfig("latent", steps=s, guidance_cutoff=0.25),
    ]


def pruning_sweep(steps: int = 4) -> list[BenchConfig]:
    """Pruned against unpruned, on torch and on the fastest CPU engine settings, beside the fastest peer (stock
    diffusers with OpenVINO int8): what pruning buys in time and costs in prompt-match. 10-20 minutes on 2 cores."""
    s, ov, cut = steps, dict(engine="openvino"), dict(guidance_cutoff=0.5)
    rows = [BenchConfig(STOCK, steps=s, quantize="int8", **ov)]
    for pruned in (False, True):
        rows += [BenchConfig("latent", steps=s, pruned=pruned),
                 BenchConfig("latent", steps=s, quantize="int8", pruned=pruned, **cut, **ov),
                 BenchConfig("gan", pruned=pruned), BenchConfig("gan", quantize="int8", pruned=pruned, **ov)]
    return rows


def uses_engines(configs) -> bool:
    return any(c.engine != "torch" or c.quantize for c in configs)


def fp32_reference(config: BenchConfig) -> BenchConfig:
    """The same configuration in plain fp32 on torch: what its images should look like."""
    return dataclasses.replace(config, precision="fp32", engine="torch", quantize=None, compile=False,
                               channels_last=False, fuse_qkv=False, cuda_graphs=False, prompt_cache=True, pruned=False)


def _images(runner, settings: BenchSettings, batch: int) -> np.ndarray:
    images = []
    for prompt in settings.prompts[:PIXEL_PROMPTS]:
        images += runner.run(prompt, seed=0, batch_size=batch).images
    return np.stack([np.asarray(image, dtype=np.int16) for image in images])


def add_pixel_differences(runners, rows: list[dict], settings: BenchSettings) -> None:
    """``pixel_diff_vs_fp32``: mean and max |difference| (0-255) from the fp32 torch run of the same configuration,
    same prompts and seeds; a compiled row keeps its own batch size (another one would compile again)."""
    by_config = {runner.config: runner for runner in runners}
    for runner, row in zip(runners, rows):
        reference_config = fp32_reference(runner.config)
        if reference_config == runner.config.quality_key:
            row["pixel_diff_vs_fp32"] = {"mean": 0.0, "max": 0.0}
            continue
        batch = runner.config.batch_size if runner.config.compile else 1
        reference = by_config.get(dataclasses.replace(reference_config, batch_size=batch))
        if reference is None:
            reference = make_runner(dataclasses.replace(reference_config, batch_size=batch), settings.device)
            reference.load()
            by_config[reference.config] = reference
        difference = np.abs(_images(runner, settings, batch) - _images(reference, settings, batch))
        row["pixel_diff_vs_fp32"] = {"mean": float(difference.mean()), "max": float(difference.max())}


def _unet(runner):
    return runner.pipeline.unet if runner.config.backend == STOCK else runner.generator.unet


def measure_unet_calls(runners, settings: BenchSettings, batch: int = 2) -> list[dict]:
    """Every distinct latent UNet (per engine, precision, quantisation) called at ``batch`` on the same inputs,
    interleaved round by round: ms per UNet call, the module alone."""
    picked = {}
    for runner in runners:
        config = runner.config
        if config.is_latent and config.backend != "latent-lcm":
            key = (config.backend, config.engine, config.precision, config.quantize, config.compile, config.pruned)
            picked.setdefault(key, runner)
    if not picked:
        return []
    generator = torch.Generator().manual_seed(0)
    latents, timestep = torch.randn((batch, 4, 16, 16), generator=generator), torch.tensor(500)
    samples = {key: [] for key in picked}
    with torch.inference_mode():
        for round_index in range(settings.warmup_rounds + settings.floor_rounds * 2):
            for key, runner in picked.items():
                stock = runner.config.backend == STOCK
                dtype = next(_unet(runner).parameters()).dtype
                # Each one's own context length (stock pads to the tokenizer's maximum): a shape its engine has seen,
                # so nothing is converted again here (a new one would get int8 without calibration).
                context = torch.randn((batch, _context_length(runner), 384), generator=generator)
                # Called as each one's own loop calls it (stock passes more keywords), so no engine sees a new call.
                extra = dict(timestep_cond=None, cross_attention_kwargs=None, added_cond_kwargs=None) if stock else {}
                synchronize(runner.device)
                start = time.perf_counter()
                _unet(runner)(latents.to(dtype), timestep, encoder_hidden_states=context.to(dtype), **extra,
                              return_dict=False)
                elapsed = (time.perf_counter() - start) * 1000
                if round_index >= settings.warmup_rounds:
                    samples[key].append(elapsed)
    return [{"label": _unet_label(runner.config), "engine": key[1], "precision": key[2], "quantize": key[3],
             "ms_per_call": statistics.median(samples[key]), "batch_size": batch} for key, runner in picked.items()]


def _context_length(runner) -> int:
    if runner.config.backend == STOCK:
        return runner.pipeline.tokenizer.model_max_length
    return runner.generator.empty_context.shape[1]


def _unet_label(config: BenchConfig) -> str:
    who = "stock diffusers" if config.backend == STOCK else "genimg"
    engine = "OpenVINO" if config.engine == "openvino" else ("inductor" if config.compile else "torch eager")
    pruned = "pruned " if config.pruned else ""
    return f"{who} {pruned}UNet, {engine} {config.precision}{' ' + config.quantize if config.quantize else ''}"


def engine_kind(row: dict) -> str:
    config = row["config"]
    engine = "openvino" if config.get("engine") == "openvino" else ("torch+compile" if config["compile"] else "torch")
    return f"{engine} {config.get('quantize') or config['precision']}{' pruned' if config.get('pruned') else ''}"


def engine_winners(rows: list[dict]) -> list[dict]:
    """Per backend (and steps, batch size): the fastest row of each engine kind, and which kind wins."""
    groups = {}
    for row in rows:
        groups.setdefault((row["backend"], row["steps"], row["batch_size"]), []).append(row)
    winners = []
    for (backend, steps, batch), group in groups.items():
        best = {}
        for row in group:
            kind = engine_kind(row)
            if kind not in best or row["latency_ms"]["median"] < best[kind]["latency_ms"]["median"]:
                best[kind] = row
        if len(best) > 1:
            fastest = min(best.values(), key=lambda r: r["latency_ms"]["median"])
            winners.append({"backend": backend, "steps": steps, "batch_size": batch, "winner": engine_kind(fastest),
                            "row": fastest["label"], "ms": fastest["latency_ms"]["median"],
                            "by_engine": {k: r["latency_ms"]["median"] for k, r in best.items()}})
    return winners


def _fp32_score(rows: list[dict], row: dict) -> float | None:
    """The prompt-match of the fp32 torch row with the same images as ``row`` would have without its engine (and
    unpruned: pruning is judged against the model it was cut from)."""
    reference = fp32_reference(BenchConfig(**row["config"])).quality_key
    for other in rows:
        config = BenchConfig(**other["config"])
        if config.engine == "torch" and not config.quantize and config.precision == "fp32" and not config.pruned \
                and fp32_reference(config).quality_key == reference:
            return other["score"]
    return None


def _unpruned_score(rows: list[dict], row: dict) -> float | None:
    """A pruned row's twin without pruning (same engine and options): the score pruning is judged against."""
    twin = dataclasses.asdict(dataclasses.replace(BenchConfig(**row["config"]), pruned=False))
    return next((other["score"] for other in rows if other["config"] == twin), None)


def _keeps_quality(rows: list[dict], row: dict) -> bool:
    """Within 2 prompt-match points of its fp32 reference and, if pruned, of its unpruned twin (where they ran)."""
    references = [_fp32_score(rows, row)] + ([_unpruned_score(rows, row)] if row["config"].get("pruned") else [])
    return all(reference is None or row["score"] >= reference - 2 for reference in references)


def engine_targets(rows: list[dict], unet_calls: list[dict]) -> dict:
    """The race's headline figures, each with its row and (in the JSON) the threshold it is compared with."""
    targets = {}
    latent4 = [r for r in rows if r["backend"] == "latent" and r["steps"] == 4 and r["batch_size"] == 1]
    peers = [r for r in rows if r["backend"] == STOCK and r["config"].get("engine") == "openvino"
             and r["batch_size"] == 1]
    if latent4 and peers:
        good = [r for r in latent4 if _keeps_quality(rows, r)]
        ours = min(good or latent4, key=lambda r: r["latency_ms"]["median"])
        peer = min(peers, key=lambda r: r["latency_ms"]["median"])
        ratio = peer["latency_ms"]["median"] / ours["latency_ms"]["median"]
        targets["vs_fastest_peer"] = {"target": 2.0, "value": ratio, "row": ours["label"], "peer": peer["label"],
                                      "score": ours["score"], "fp32_score": _fp32_score(rows, ours),
                                      "hit": ratio >= 2.0}
    stock_int8 = min((u for u in unet_calls if u["label"].startswith("stock") and u["quantize"] == "int8"),
                     key=lambda u: u["ms_per_call"], default=None)  # the peer at its fastest (f32 or bf16 for the rest)
    genimg_unets = [u for u in unet_calls if u["label"].startswith("genimg")]
    if stock_int8 and genimg_unets:
        best = min(genimg_unets, key=lambda u: u["ms_per_call"])
        targets["unet_per_call"] = {"target_ms": stock_int8["ms_per_call"], "value": best["ms_per_call"],
                                    "row": best["label"], "hit": best["ms_per_call"] <= stock_int8["ms_per_call"]}
    lcm = [r for r in rows if r["backend"] == "latent-lcm" and r["steps"] == 1 and r["config"]["tiny_decoder"]
           and r["batch_size"] == 8]
    if lcm:
        best = min(lcm, key=lambda r: r["latency_ms"]["median"])
        targets["lcm_bs8"] = {"target_ms": 4.0, "value": best["latency_ms"]["median"], "row": best["label"],
                              "hit": best["latency_ms"]["median"] <= 4.0}
    return targets


def engine_lines(report: dict) -> list[str]:
    """The report's engine section: quality next to speed, the UNet per call, the winners, against the peers."""
    engines = report.get("engines")
    if not engines:
        return []
    lines = ["", "## Engines and quantisation", "",
             "Pixel difference: mean / max |difference| (0-255) from the same configuration in fp32 on torch, same "
             "prompts and seeds. First call: load + first generation (OpenVINO conversion or a disk-cache read, "
             "NNCF calibration, compilation).", "",
             "| config | engine | ms / image | score | pixel diff vs fp32 | first call s |",
             "|---|---|---|---|---|---|"]
    for row in report["rows"]:
        diff = row.get("pixel_diff_vs_fp32")
        diff_text = "n/a" if diff is None else f"{diff['mean']:.2f} / {diff['max']:.0f}"
        lines.append(f"| {row['label']} | {engine_kind(row)} | {row['latency_ms']['median']:.2f} | {row['score']:.1f} "
                     f"| {diff_text} | {row['first_call_ms'] / 1000:.1f} |")
    if engines["unet_calls"]:
        lines += ["", "The latent UNet alone, batch 2 (one guided step), same inputs, interleaved rounds:", "",
                  "| UNet | ms per call |", "|---|---|"]
        lines += [f"| {u['label']} | {u['ms_per_call']:.2f} |" for u in engines["unet_calls"]]
    lines += ["", "Which engine wins, per backend, steps and batch size (fastest row of each engine kind):", ""]
    for w in engines["winners"]:
        others = ", ".join(f"{kind} {ms:.2f}" for kind, ms in sorted(w["by_engine"].items(), key=lambda kv: kv[1]))
        lines.append(f"- {w['backend']} {w['steps'] or ''} steps, batch {w['batch_size']}: **{w['winner']}** "
                     f"({w['row']}); ms / image: {others}.")
    lines += ["", "Against the peers:", ""] + engine_finding_lines(engines["targets"])
    return lines


def engine_finding_lines(targets: dict) -> list[str]:
    """The race's figures (``engine_targets``: the JSON keeps a threshold beside each) as findings."""
    lines = []
    if "vs_fastest_peer" in targets:
        t = targets["vs_fastest_peer"]
        lines.append(f"- genimg's fastest latent 4-step config within 2 points of its fp32 prompt-match, against the "
                     f"fastest peer ({t['peer']}): **{t['value']:.2f}x** ({t['row']}, score {t['score']:.1f}, its "
                     f"fp32 {'n/a' if t['fp32_score'] is None else format(t['fp32_score'], '.1f')}).")
    if "unet_per_call" in targets:
        t = targets["unet_per_call"]
        lines.append(f"- per UNet call, genimg's fastest: **{t['value']:.2f} ms** ({t['row']}), against "
                     f"{t['target_ms']:.2f} ms for OpenVINO int8 on the stock module.")
    if "lcm_bs8" in targets:
        t = targets["lcm_bs8"]
        lines.append(f"- latent-lcm, 1 step and the tiny decoder, at batch 8: **{t['value']:.2f} ms** per image "
                     f"({t['row']}).")
    return lines
