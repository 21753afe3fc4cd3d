"""What the 2x upscaler costs: ``genimg.load(...)`` generators with and without ``upscale=2``, timed in interleaved
rounds in one process (latent-lcm, 1 step, batch 8 by default), and the upscaler's own stage per image.

    python -m tools.upscale_cost [--rounds 15] [--out assets/bench/cpu-upscale.md]     # from the repository root

Each pair (same engine, precision, decoder) runs side by side in every round, so the ratio comes from one run.
Reported: median ms per image of the whole generation with and without the upscaler, their ratio, and the median of
the ``upscale`` stage per image. First calls (conversion, compile) are warm-up, not timed.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import genimg
from genimg.hardware import cpu_name

CONFIGS = {  # label -> genimg.load options of the pair (the upscale=2 twin adds upscale=2)
    "torch fp32, KL decoder": dict(precision="fp32"),
    "torch fp32, tiny decoder": dict(precision="fp32", tiny_decoder=True),
    "torch bf16, tiny decoder": dict(precision="bf16", tiny_decoder=True),
    "openvino bf16, tiny decoder": dict(precision="bf16", tiny_decoder=True, engine="openvino"),
}
TARGET_RATIO, TARGET_UPSCALE_MS = 1.35, 3.0


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def measure(backend: str, steps: int, batch_size: int, rounds: int) -> dict:
    pairs = {label: {upscale: genimg.load(backend, device="cpu", upscale=upscale, **options)
                     for upscale in (1, 2)} for label, options in CONFIGS.items()}
    for pair in pairs.values():
        for generator in pair.values():
            for _ in range(2):
                generator.generate("a rocket", steps=steps, batch_size=batch_size)
    totals = {(label, upscale): [] for label in pairs for upscale in (1, 2)}
    stage = {label: [] for label in pairs}
    for round_index in range(rounds):
        for label, pair in pairs.items():
            order = (1, 2) if round_index % 2 == 0 else (2, 1)  # neither side always runs first
            for upscale in order:
                start = time.perf_counter()
                result = pair[upscale].generate("a rocket", steps=steps, batch_size=batch_size, seed=round_index)
                totals[label, upscale].append((time.perf_counter() - start) * 1000 / batch_size)
                if upscale == 2:
                    stage[label].append(result.timings["upscale"] / batch_size)
    rows = {}
    for label in pairs:
        plain, upscaled = (statistics.median(totals[label, u]) for u in (1, 2))
        rows[label] = {"ms_per_image": round(plain, 3), "ms_per_image_upscaled": round(upscaled, 3),
                       "ratio": round(upscaled / plain, 3), "upscale_stage_ms_per_image":
                           round(statistics.median(stage[label]), 3)}
    return rows


def markdown(rows: dict, backend: str, steps: int, batch_size: int, rounds: int, context: dict) -> str:
    lines = [f"# What the 2x upscaler costs: {backend}, {steps} step{'s' if steps != 1 else ''}, batch {batch_size}",
             "", f"- Date: {context['date']}", f"- Machine: {context['cpu']}, torch threads {context['threads']}",
             f"- Load average (1, 5, 15 min): before {context['load_before']}, after {context['load_after']}",
             f"- Command: `{context['command']}`",
             f"- Medians of {rounds} interleaved rounds per configuration, ms per image of the whole generation "
             "(`generator.generate`), with and without `upscale=2`; the upscale stage from `result.timings`.", "",
             "| configuration | 64 px (ms / image) | 128 px, upscaled (ms / image) | ratio "
             "| upscale stage (ms / image) |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {label} | {row['ms_per_image']:.2f} | {row['ms_per_image_upscaled']:.2f} | {row['ratio']:.2f}x | "
              f"{row['upscale_stage_ms_per_image']:.2f} |" for label, row in rows.items()]
    ratio_hits = [label for label, row in rows.items() if row["ratio"] <= TARGET_RATIO]
    stage_hits = [label for label, row in rows.items() if row["upscale_stage_ms_per_image"] <= TARGET_UPSCALE_MS]
    lines += ["", f"Targets: with the upscaler at most {TARGET_RATIO}x the time without it: "
                  f"{'hit by ' + ', '.join(ratio_hits) if ratio_hits else 'missed by every configuration'}; "
                  f"the upscaler alone at most {TARGET_UPSCALE_MS:g} ms an image: "
                  f"{'hit by ' + ', '.join(stage_hits) if stage_hits else 'missed by every configuration'}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="latent-lcm")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", help="also write the Markdown report here (e.g. assets/bench/cpu-upscale.md)")
    args = parser.parse_args()
    import torch

    context = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "cpu": cpu_name(), "threads": torch.get_num_threads(), "load_before": load_average(),
               "command": "python -m tools.upscale_cost " + " ".join(sys.argv[1:])}
    rows = measure(args.backend, args.steps, args.batch_size, args.rounds)
    context["load_after"] = load_average()
    text = markdown(rows, args.backend, args.steps, args.batch_size, args.rounds, context)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
