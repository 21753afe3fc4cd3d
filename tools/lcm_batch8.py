"""The distilled model's batch throughput per engine: latent-lcm, 1 step, tiny decoder, batch 8, through
``genimg.load(...)`` (the generators the app serves), medians of interleaved rounds in one process.

    python -m tools.lcm_batch8 [--rounds 10] [--compile]     # from the repository root

``--compile`` adds the torch + torch.compile rows (30-60 s of compiling each before the first round).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import genimg

CONFIGS = {
    "torch fp32": dict(precision="fp32"),
    "torch bf16": dict(precision="bf16"),
    "openvino fp32": dict(precision="fp32", engine="openvino"),
    "openvino bf16": dict(precision="bf16", engine="openvino"),
    "openvino int8": dict(precision="fp32", engine="openvino", quantize="int8"),
    "openvino int8 + bf16": dict(precision="bf16", engine="openvino", quantize="int8"),
}
COMPILED = {"torch fp32 + compile": dict(precision="fp32", compile=True),
            "torch bf16 + compile": dict(precision="bf16", compile=True)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    configs = {**CONFIGS, **(COMPILED if args.compile else {})}
    generators = {label: genimg.load("latent-lcm", device="cpu", tiny_decoder=True, **options)
                  for label, options in configs.items()}
    for generator in generators.values():  # first calls (conversion, compile) are not timed
        for _ in range(2):
            generator.generate("a slice of pizza", steps=1, batch_size=args.batch_size)
    times = {label: [] for label in generators}
    for round_index in range(args.rounds):
        for label, generator in generators.items():
            start = time.perf_counter()
            generator.generate("a slice of pizza", steps=1, batch_size=args.batch_size, seed=round_index)
            times[label].append((time.perf_counter() - start) * 1000 / args.batch_size)
    print(f"| latent-lcm 1 step, tiny decoder, batch {args.batch_size} | ms per image (median of {args.rounds}) |")
    print("|---|---:|")
    for label, samples in times.items():
        print(f"| {label} | {statistics.median(samples):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
