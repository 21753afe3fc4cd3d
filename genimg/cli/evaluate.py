"""``python -m genimg evaluate``: prompt-match quality per backend/config; writes eval.json and eval.md."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from genimg.errors import GenimgError
from genimg.evaluate.prompt_match import CONFIGS, evaluate, select_configs, to_markdown


def add_parser(subparsers) -> None:
    labels = ", ".join(c.label for c in CONFIGS)
    parser = subparsers.add_parser("evaluate", help="prompt-match quality per backend (top-1/top-5 retrieval)")
    parser.add_argument("--backends", nargs="+", metavar="NAME",
                        help=f"configs or backends to evaluate (default: all): {labels}")
    parser.add_argument("--limit", type=int, default=200, help="how many dataset names to generate (default 200)")
    parser.add_argument("--out", default="outputs/eval", help="folder for eval.json and eval.md")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per generation batch (1-16)")
    parser.add_argument("--latency-runs", type=int, default=3, help="timed batches of 8 per config")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grids", help="also save a grid of the first 32 generations per config to this folder")
    parser.set_defaults(handler=main)


def save_grid(images: np.ndarray, path: Path, columns: int = 8) -> None:
    images = images[: 4 * columns]
    rows = -(-len(images) // columns)
    size = images.shape[1]
    grid = Image.new("RGB", (columns * size, rows * size), "white")
    for i, image in enumerate(images):
        grid.paste(Image.fromarray(image), ((i % columns) * size, (i // columns) * size))
    grid.save(path)


def main(args: argparse.Namespace) -> int:
    from genimg.evaluate.judge import PromptJudge
    from genimg.train.data import load_dataset

    if args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    on_images = None
    if args.grids:
        grids = Path(args.grids)
        grids.mkdir(parents=True, exist_ok=True)

        def on_images(label, set_name, images):
            save_grid(images, grids / f"{label}-{set_name}.png")

    try:
        configs = select_configs(args.backends)
        report = evaluate(load_dataset("emoji"), configs, PromptJudge(), limit=args.limit, seed=args.seed,
                          batch_size=args.batch_size, latency_runs=args.latency_runs, device=args.device,
                          precision=args.precision, on_images=on_images)
    except (GenimgError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(report)
    (out / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "eval.md").write_text(markdown)
    print(json.dumps(report, indent=1) if args.json else markdown)
    return 0
