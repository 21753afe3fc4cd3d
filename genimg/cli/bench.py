"""``python -m genimg bench``: sweep backends x speed options x batch sizes against stock diffusers."""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from genimg.bench.config import PROMPTS, BenchSettings, full_sweep, quick_sweep
from genimg.bench.run import run_bench
from genimg.bench.report import markdown, plot, write_report


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="latency/throughput/memory/prompt-match sweep vs stock diffusers")
    parser.add_argument("--quick", action="store_true", help="a small sweep (about a minute on 2 CPU cores)")
    parser.add_argument("--engines", action="store_true", help="the CPU engine race instead: torch vs OpenVINO, "
                                                               "fp32/bf16/int8, against stock diffusers on OpenVINO")
    parser.add_argument("--race", action="store_true", help="the CPU race alone: the OpenVINO int8 peer (f32 and "
                        "bf16 for the rest) against genimg's fastest CPU settings, same weights and steps")
    parser.add_argument("--pruning", action="store_true", help="pruned against unpruned weights (latent, gan), on "
                        "torch and OpenVINO int8, beside the OpenVINO int8 peer, with prompt-match (10-20 minutes)")
    parser.add_argument("--out", default="outputs/bench", help="folder for NAME.json/.csv/.md/.png")
    parser.add_argument("--name", default="bench", help="file name stem of the outputs (default: bench)")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the markdown table")
    parser.add_argument("--plot", metavar="FILE", help="also write the speed-vs-quality scatter to FILE")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, help="timed rounds per config (default 10, quick 5)")
    parser.add_argument("--warmup", type=int, help="warm-up rounds per config (default 2, quick 1)")
    parser.add_argument("--prompts", type=int, help=f"prompts for the prompt-match score (default {len(PROMPTS)}, "
                                                    "quick 4)")
    parser.add_argument("--images-per-prompt", type=int, help="seeds per prompt for the score (default 2, quick 1)")
    parser.add_argument("--steps", type=int, default=4, help="steps of the stock diffusers comparison (default 4)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.set_defaults(handler=main)


def settings_from(args: argparse.Namespace) -> BenchSettings:
    quick = args.quick

    def pick(value, full, small):
        return value if value is not None else (small if quick else full)

    prompts = pick(args.prompts, len(PROMPTS), 4)
    return BenchSettings(warmup_rounds=pick(args.warmup, 2, 1), rounds=pick(args.rounds, 10, 5),
                         floor_rounds=pick(args.rounds, 10, 5), prompts=PROMPTS[:max(1, prompts)],
                         images_per_prompt=pick(args.images_per_prompt, 2, 1), device=args.device,
                         progress=sys.stderr.isatty() or not args.json)


def main(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    configs = quick_sweep(args.steps) if args.quick else full_sweep(args.steps)
    if args.engines:
        from genimg.bench.engines import engine_sweep

        configs = engine_sweep(args.steps)
    if args.race:
        from genimg.bench.engines import race_sweep

        configs = race_sweep(args.steps)
    if args.pruning:
        from genimg.bench.engines import pruning_sweep

        configs = pruning_sweep(args.steps)
    settings = settings_from(args)
    command = "python -m genimg " + shlex.join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py") else ""
    report = run_bench(configs, settings)
    paths = write_report(report, args.out, args.name, command)
    if args.plot:
        plot(report, args.plot)
    if args.json:
        print(json.dumps(dict(report, outputs={k: str(v) for k, v in paths.items()}), indent=2, default=str))
    else:
        print(markdown(report, command))
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0
