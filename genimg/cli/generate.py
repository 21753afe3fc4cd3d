"""``python -m genimg generate``: prompts in, PNG files and timings out; the model is loaded once."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

import genimg
from genimg.errors import GenimgError
from genimg.options import ENGINES, PRECISIONS, QUANTIZE, TEXT_ENGINES, UPSCALE_FACTORS, clean_prompt


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="generate images from a prompt or a file of prompts")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("prompt", nargs="?", help="what to draw")
    source.add_argument("--prompts-file", type=Path, help="one prompt per line; writes DIR/0000.png, DIR/0001.png...")
    add_load_options(parser)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--negative-prompt", help="what guidance steers away from (the guided 'latent' teacher; "
                                                  "elsewhere ignored, with a note)")
    parser.add_argument("--timeout", type=float, help="seconds a prompt may take; checked between denoising steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--best-of", type=int, default=1,
                        help="candidates drawn per image (one batch); the judge keeps the one that fits best (1-8)")
    parser.add_argument("--no-layout", dest="layout", action="store_false",
                        help="a scene of several objects is drawn by the model in one go, not object by object and "
                             "arranged (see docs/quality.md)")
    parser.add_argument("--out", type=Path, default=Path("outputs"))
    parser.add_argument("--json", action="store_true", help="print the timings of every prompt as JSON")
    parser.set_defaults(handler=main)


def add_load_options(parser) -> None:
    """The arguments of genimg.load: backend, model, precision, device and the speed options (also `genimg serve`)."""
    parser.add_argument("--backend", default="latent-lcm", choices=sorted(genimg.BACKENDS))
    parser.add_argument("--model", help="latent only: a diffusers pipeline id or local folder")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scheduler")
    parser.add_argument("--tiny-decoder", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--engine", choices=ENGINES, help="torch (default) or openvino (CPU; converted once, cached)")
    parser.add_argument("--text-engine", choices=TEXT_ENGINES,
                        help="the MiniLM text encoder's engine (default: as --engine); openvino-int8: int8 weights")
    parser.add_argument("--quantize", choices=QUANTIZE, help="int8 (CPU/CUDA) or fp8 (GPUs with fp8 units)")
    parser.add_argument("--pruned", action="store_true", help="the channel-pruned weights (gan, latent)")
    parser.add_argument("--guidance-cutoff", type=float,
                        help="classifier-free guidance on this first fraction of the steps only (0-1]")
    parser.add_argument("--upscale", type=int, choices=UPSCALE_FACTORS,
                        help="2: end with the 2x upscaler (128 px images; embedded backends only)")
    parser.add_argument("--no-match-concepts", dest="match_concepts", action="store_false", default=None,
                        help="condition the model on the prompt as typed, not on the nearest known emoji")


def load_options(args: argparse.Namespace) -> dict:
    """genimg.load's keyword arguments (all but the backend) from add_load_options' arguments."""
    options = {"device": args.device, "precision": args.precision, "model": args.model,
               "tiny_decoder": args.tiny_decoder, "compile": args.compile, "pruned": args.pruned}
    options.update({name: getattr(args, name) for name in ("scheduler", "guidance_cutoff", "match_concepts", "engine",
                                                           "text_engine", "quantize", "upscale")
                    if getattr(args, name) is not None})
    return options


def read_prompts(args: argparse.Namespace) -> list[str]:
    if args.prompts_file is None:
        return [clean_prompt(args.prompt)]
    try:
        lines = args.prompts_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise GenimgError(f"Cannot read the prompts file {args.prompts_file}: {error}") from error
    prompts = [clean_prompt(line) for line in lines if line.strip()]  # blank lines are not prompts
    if not prompts:
        raise GenimgError(f"The prompts file {args.prompts_file} has no prompts (one per line).")
    return prompts


def image_name(prompt_index: int, batch_index: int) -> str:
    return f"{prompt_index:04d}.png" if batch_index == 0 else f"{prompt_index:04d}-{batch_index}.png"


def main(args: argparse.Namespace) -> int:
    try:
        prompts = read_prompts(args)
        generator = genimg.load(args.backend, **load_options(args))
        args.out.mkdir(parents=True, exist_ok=True)
        records = []
        for index, prompt in enumerate(tqdm(prompts, desc="generating", disable=len(prompts) == 1)):
            result = generator.generate(prompt, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                                        guidance=args.guidance, timeout_s=args.timeout, best_of=args.best_of,
                                        layout=args.layout,
                                        **({"negative_prompt": args.negative_prompt} if args.negative_prompt else {}))
            files = []
            for batch_index, image in enumerate(result.images):
                path = args.out / image_name(index, batch_index)
                image.save(path)
                files.append(str(path))
            records.append({"prompt": prompt, "files": files, "timings_ms": result.timings,
                            "drawn_as": result.info.get("drawn_as"), "notes": result.info.get("notes", []),
                            "negative_prompt": result.info.get("negative_prompt"),
                            "best_of": result.info.get("best_of"), "layout": result.info.get("layout")})
    except GenimgError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        for record in records:
            drawn_as = f" -> {record['drawn_as']['concept']}" if record["drawn_as"] else ""
            print(f"{record['files'][0]}: {record['timings_ms']['total']:.1f} ms  ({record['prompt']}{drawn_as})")
    return 0
