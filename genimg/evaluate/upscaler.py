"""How much the 2x upscaler adds: `python -m genimg evaluate --upscaler` writes upscaler.md, .json and a sheet.

1. **Against the truth.** The held-out glyphs (``train.upscaler_data.held_out_indices``: never trained on) at 64 px,
   the dataset's own images, are upscaled to 128 px by the upscaler, PIL bicubic and PIL Lanczos, and compared with
   the font's 128 px glyph: PSNR (dB, RGB, 0-255) and a perceptual distance, the LPIPS-style distance of the judge's
   conv features (``models.judge.perceptual_distance``; lower is closer). The upscaler trains on that distance, so
   the judge's embedding distance (1 - cosine of its image embeddings, at the judge's 64 px) is given beside it.
2. **Prompt match.** Each embedded generator draws the evaluation's name prompts with and without ``upscale=2``
   (same seeds: the same 64 px drawings); the judge scores both. It sees 64 px, so it scores the upscaled image
   downscaled back (bilinear, as ``evaluate.judge.pil_to_tensor`` does for any size).
3. **Contact sheets**: 64 px (shown at 128, nearest) | bicubic | upscaler | truth, for a fixed set of held-out emoji
   (upscaler.png); and the Live tab's configuration (latent-lcm, 1 step, tiny decoder) on a few prompts, 64 px |
   bicubic | ``upscale=2`` (upscaler-generations.png).
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from genimg.evaluate.prompt_match import name_prompts
from genimg.models.judge import perceptual_distance
from genimg.train.data import load_dataset
from genimg.train.upscaler_data import held_out_indices, to_tensor

METHODS = ("upscaler", "bicubic", "lanczos")
PROMPT_CONFIGS = (("gan", "gan", None), ("vae", "vae", None), ("latent-lcm-1", "latent-lcm", 1),
                  ("latent-lcm-4", "latent-lcm", 4))
SHEET_EMOJI = 10  # rows of the contact sheet
SHEET_PROMPTS = ("a rocket", "a slice of pizza", "a dog", "red heart", "grinning face", "a cactus")
TARGETS = {"psnr_over_bicubic_db": 1.5, "prompt_match_drop_points": 1.0}


def psnr(images: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per image, uint8 (B, H, W, 3) pairs -> dB."""
    mse = ((images.astype(np.float64) - truth.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))


def upscale_all(method: str, inputs: np.ndarray, upscaler) -> np.ndarray:
    """uint8 (B, 64, 64, 3) -> uint8 (B, 128, 128, 3)."""
    if method in ("bicubic", "lanczos"):
        resample = Image.BICUBIC if method == "bicubic" else Image.LANCZOS
        return np.stack([np.asarray(Image.fromarray(image).resize((128, 128), resample)) for image in inputs])
    with torch.inference_mode():
        output = torch.cat([upscaler(to_tensor(inputs[start:start + 64]))
                            for start in range(0, len(inputs), 64)])
    return ((output.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.inference_mode()
def truth_metrics(upscaled: np.ndarray, truth: np.ndarray, judge) -> dict:
    ours, theirs = to_tensor(upscaled), to_tensor(truth)
    perceptual = torch.cat([perceptual_distance(judge.model, ours[i:i + 64], theirs[i:i + 64])
                            for i in range(0, len(ours), 64)])
    embed = lambda images: judge.model.embed_images(  # noqa: E731 - the judge's own 64 px view
        torch.nn.functional.interpolate(images, size=64, mode="bilinear", antialias=True, align_corners=False))
    embedding = 1 - (embed(ours) * embed(theirs)).sum(-1)
    return {"psnr_db": round(float(psnr(upscaled, truth).mean()), 3),
            "perceptual": round(float(perceptual.mean()), 4),
            "judge_embedding_distance": round(float(embedding.mean()), 5)}


def prompt_match(judge, device: str, limit: int, seed: int) -> dict:
    """Mean judge score (0-100) per generator config, at 64 px and upscaled."""
    import genimg

    prompts = name_prompts(load_dataset("emoji"), limit, seed).prompts
    rows = {}
    for label, backend, steps in PROMPT_CONFIGS:
        scores = {}
        for upscale in (1, 2):
            generator = genimg.load(backend, device=device, upscale=upscale)
            images = []
            for start in range(0, len(prompts), 16):
                chunk = prompts[start:start + 16]
                results = generator.generate_batch(chunk, list(range(start, start + len(chunk))), steps=steps)
                images += [result.images[0] for result in results]
            scores[upscale] = [judge.score([image], prompt)[0] for image, prompt in zip(images, prompts)]
        rows[label] = {"score_64": round(statistics.mean(scores[1]), 2),
                       "score_upscaled": round(statistics.mean(scores[2]), 2),
                       "change": round(statistics.mean(scores[2]) - statistics.mean(scores[1]), 2)}
    return rows


def contact_sheet(inputs: np.ndarray, columns: dict, truth: np.ndarray | None, names: list) -> Image.Image:
    """One row per emoji: 64 px (nearest, at 128) | each method's 128 px | truth (if given); a header names the
    columns."""
    titles = ["64 px", *columns] + (["truth 128 px"] if truth is not None else [])
    header, size, pad = 18, 128, 4
    sheet = Image.new("RGB", (len(titles) * (size + pad), header + len(inputs) * (size + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for column, title in enumerate(titles):
        draw.text((column * (size + pad) + 4, 3), title, fill="black")
    for row in range(len(inputs)):
        tiles = [Image.fromarray(inputs[row]).resize((size, size), Image.NEAREST),
                 *(Image.fromarray(images[row]) for images in columns.values())]
        tiles += [Image.fromarray(truth[row])] if truth is not None else []
        for column, tile in enumerate(tiles):
            sheet.paste(tile, (column * (size + pad), header + row * (size + pad)))
    return sheet


def generations_sheet(device: str) -> Image.Image:
    """The Live configuration's drawings of SHEET_PROMPTS: 64 px | bicubic | upscale=2 (same seed, same drawing)."""
    import genimg

    drawn = {upscale: [genimg.load("latent-lcm", device=device, tiny_decoder=True, upscale=upscale)
                       .generate(prompt, steps=1, seed=0).images[0] for prompt in SHEET_PROMPTS]
             for upscale in (1, 2)}
    small = np.stack([np.asarray(image) for image in drawn[1]])
    return contact_sheet(small, {"bicubic": upscale_all("bicubic", small, None),
                                 "upscale=2": np.stack([np.asarray(image) for image in drawn[2]])},
                         None, list(SHEET_PROMPTS))


def evaluate_upscaler(out: Path, upscaler_folder=None, device: str = "cpu", limit: int = 64, seed: int = 0,
                      prompt_match_rows: bool = True) -> dict:
    from genimg.backends.upscale import ImageUpscaler
    from genimg.evaluate.judge import PromptJudge
    from genimg.options import SpeedOptions

    glyphs64, glyphs128 = load_dataset("emoji"), load_dataset("emoji", size=128)
    held_out = held_out_indices(len(glyphs64))
    inputs, truth = glyphs64.images[held_out], glyphs128.images[held_out]
    upscaler = ImageUpscaler(SpeedOptions(device="cpu").validated(), [], upscaler_folder)
    judge = PromptJudge()
    upscaled = {method: upscale_all(method, inputs, upscaler) for method in METHODS}
    report = {"held_out_emoji": int(len(held_out)),
              "truth": {method: truth_metrics(images, truth, judge) for method, images in upscaled.items()}}
    report["prompt_match"] = prompt_match(judge, device, limit, seed) if prompt_match_rows else {}
    report["targets"] = check_targets(report)
    rows = np.linspace(0, len(held_out) - 1, SHEET_EMOJI).round().astype(int)
    sheet = contact_sheet(inputs[rows], {"bicubic": upscaled["bicubic"][rows], "upscaler": upscaled["upscaler"][rows]},
                          truth[rows], [glyphs64.names[held_out[r]] for r in rows])
    report["sheet_emoji"] = [glyphs64.names[held_out[r]] for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    sheet.save(out / "upscaler.png")
    if prompt_match_rows:
        generations_sheet(device).save(out / "upscaler-generations.png")
    (out / "upscaler.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "upscaler.md").write_text(to_markdown(report))
    return report


def check_targets(report: dict) -> dict:
    truth = report["truth"]
    gain = truth["upscaler"]["psnr_db"] - truth["bicubic"]["psnr_db"]
    perceptual_best = all(truth["upscaler"]["perceptual"] < truth[m]["perceptual"] for m in ("bicubic", "lanczos"))
    drops = [-row["change"] for row in report["prompt_match"].values()]
    return {"psnr_over_bicubic_db": round(gain, 3), "psnr_hit": gain >= TARGETS["psnr_over_bicubic_db"],
            "perceptual_better_than_bicubic_and_lanczos": perceptual_best,
            "largest_prompt_match_drop": round(max(drops), 2) if drops else None,
            "prompt_match_hit": all(d <= TARGETS["prompt_match_drop_points"] for d in drops) if drops else None}


def to_markdown(report: dict) -> str:
    lines = ["# The 2x upscaler against bicubic and Lanczos", "",
             f"{report['held_out_emoji']} held-out glyphs: their 64 px images upscaled to 128 px, compared with the "
             "font's 128 px glyph. PSNR: higher is better; perceptual (LPIPS-style distance of the judge's conv "
             "features) and judge embedding distance: lower is better.", "",
             "| method | PSNR (dB) | perceptual | judge embedding distance |", "|---|---:|---:|---:|"]
    lines += [f"| {method} | {row['psnr_db']:.2f} | {row['perceptual']:.4f} | {row['judge_embedding_distance']:.5f} |"
              for method, row in report["truth"].items()]
    if report["prompt_match"]:
        lines += ["", "Prompt match (judge, 0-100, mean over the name prompts; upscaled images are scored at the "
                      "judge's 64 px, downscaled back):", "", "| generator | 64 px | upscaled | change |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {label} | {row['score_64']:.2f} | {row['score_upscaled']:.2f} | {row['change']:+.2f} |"
                  for label, row in report["prompt_match"].items()]
    targets = report["targets"]
    lines += ["", "Targets:", "",
              f"- PSNR at least 1.5 dB above bicubic: **{targets['psnr_over_bicubic_db']:+.2f} dB**, "
              f"{'hit' if targets['psnr_hit'] else 'missed'}.",
              f"- Perceptual distance better than bicubic and Lanczos: "
              f"**{'hit' if targets['perceptual_better_than_bicubic_and_lanczos'] else 'missed'}**."]
    if targets["prompt_match_hit"] is not None:
        lines.append(f"- Prompt match of upscaled generations within 1 point of the 64 px ones: largest drop "
                     f"**{targets['largest_prompt_match_drop']:.2f}**, "
                     f"{'hit' if targets['prompt_match_hit'] else 'missed'}.")
    lines += ["", "Contact sheet (upscaler.png): 64 px (nearest) | bicubic | upscaler | truth, for "
                  + ", ".join(report["sheet_emoji"]) + "."]
    if report["prompt_match"]:
        lines += ["", "Generations (upscaler-generations.png): latent-lcm, 1 step, tiny decoder, seed 0 (the Live "
                      "tab's configuration), 64 px (nearest) | bicubic | upscale=2, for "
                      + ", ".join(SHEET_PROMPTS) + "."]
    return "\n".join(lines) + "\n"
