"""``python -m genimg evaluate``: prompt-match quality per backend/config; writes eval.json and eval.md.
``--upscaler``: the 2x upscaler against bicubic and Lanczos instead; writes upscaler.md, .json and .png."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from genimg.errors import GenimgError
from genimg.evaluate.misses import contact_sheet, family_breakdown, family_markdown
from genimg.evaluate.prompt_match import (CONFIGS, evaluate, name_prompts, paraphrase_prompts, select_configs,
                                         to_markdown)


def add_parser(subparsers) -> None:
    labels = ", ".join(c.label for c in CONFIGS)
    parser = subparsers.add_parser("evaluate", help="prompt-match quality per backend (top-1/top-5 retrieval)")
    parser.add_argument("--backends", nargs="+", metavar="NAME",
                        help=f"configs or backends to evaluate (default: all): {labels}; also 'engines' "
                             "(OpenVINO/int8 rows) and 'pruned' (the pruned variants, where trained)")
    parser.add_argument("--limit", type=int, default=200, help="how many dataset names to generate (default 200)")
    parser.add_argument("--out", default="outputs/eval", help="folder for eval.json and eval.md")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per generation batch (1-16)")
    parser.add_argument("--latency-runs", type=int, default=3, help="timed batches of 8 per config")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grids", help="also save a grid of the first 32 generations per config to this folder")
    parser.add_argument("--misses", help="also save a contact sheet of each config's misses (intended | generated | "
                                         "what the judge saw) to this folder")
    parser.add_argument("--upscaler", action="store_true",
                        help="evaluate the 2x upscaler instead: PSNR and perceptual distance to the true 128 px "
                             "glyphs of held-out emoji (vs bicubic, Lanczos), prompt match of upscaled generations "
                             "(--limit prompts; default 64 here), a contact sheet; writes upscaler.md/.json/.png")
    parser.add_argument("--composition", action="store_true",
                        help="GenEval's six tasks in the emoji world instead (single object, two objects, counting, "
                             "colours, position, colour attribution) on held-out pairings, each image right or wrong "
                             "by rule; --backends picks its configs; writes composition-DATE.md/.json/.png")
    parser.add_argument("--images-per-prompt", type=int, default=4, help="with --composition: images per prompt")
    parser.add_argument("--upscaler-folder", help="with --upscaler: the model folder (default: the shipped one)")
    parser.set_defaults(handler=main)


def main_upscaler(args: argparse.Namespace) -> int:
    from genimg.evaluate.upscaler import evaluate_upscaler

    try:
        report = evaluate_upscaler(Path(args.out), args.upscaler_folder, device=args.device,
                                   limit=64 if args.limit == 200 else args.limit, seed=args.seed)
    except (GenimgError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else (Path(args.out) / "upscaler.md").read_text())
    return 0


def main_composition(args: argparse.Namespace) -> int:
    from genimg.evaluate.composition_report import contact_sheet, evaluate_composition, select, to_markdown

    if not 1 <= args.images_per_prompt <= 16:
        print("error: --images-per-prompt must be 1 to 16", file=sys.stderr)
        return 2
    try:
        report, drawn = evaluate_composition(select(args.backends), args.images_per_prompt, args.seed, args.device,
                                             args.precision)
    except (GenimgError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"composition-{report['date']}"
    markdown = to_markdown(report)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    contact_sheet(report, drawn).save(stem.with_suffix(".png"))
    print(json.dumps(report, indent=1) if args.json else markdown)
    return 0


def save_grid(images: np.ndarray, path: Path, columns: int = 8) -> None:
    images = images[: 4 * columns]
    rows = -(-len(images) // columns)
    size = images.shape[1]
    grid = Image.new("RGB", (columns * size, rows * size), "white")
    for i, image in enumerate(images):
        grid.paste(Image.fromarray(image), ((i % columns) * size, (i // columns) * size))
    grid.save(path)


def save_misses(report: dict, generated: dict, dataset, folder: Path, limit: int, seed: int) -> None:
    """One contact sheet per config and prompt set that missed anything: ``folder/<config>-<set>.png``."""
    sets = {"names": name_prompts(dataset, limit, seed), "paraphrases": paraphrase_prompts(dataset)}
    sets["paraphrases_matched"] = sets["paraphrases"]
    folder.mkdir(parents=True, exist_ok=True)
    for (label, set_name), images in generated.items():
        sheet = contact_sheet(report["per_prompt"][label][set_name], sets[set_name], images, dataset.images)
        if sheet is not None:
            sheet.save(folder / f"{label}-{set_name}.png")


def main(args: argparse.Namespace) -> int:
    from genimg.evaluate.judge import PromptJudge
    from genimg.train.data import load_dataset

    if args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    if args.upscaler:
        return main_upscaler(args)
    if args.composition:
        return main_composition(args)
    generated = {}

    def on_images(label, set_name, images):
        if args.grids:
            Path(args.grids).mkdir(parents=True, exist_ok=True)
            save_grid(images, Path(args.grids) / f"{label}-{set_name}.png")
        if args.misses:
            generated[label, set_name] = images

    try:
        configs = select_configs(args.backends)
        dataset = load_dataset("emoji")
        report = evaluate(dataset, configs, PromptJudge(), limit=args.limit, seed=args.seed,
                          batch_size=args.batch_size, latency_runs=args.latency_runs, device=args.device,
                          precision=args.precision, on_images=on_images)
    except (GenimgError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report["families"] = family_breakdown(report["per_prompt"], dataset.names, dataset.chars)
    if args.misses:
        save_misses(report, generated, dataset, Path(args.misses), args.limit, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = "\n".join([to_markdown(report), family_markdown(report["families"], "names"),
                          family_markdown(report["families"], "paraphrases_matched")])
    (out / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "eval.md").write_text(markdown)
    print(json.dumps(report, indent=1) if args.json else markdown)
    return 0
