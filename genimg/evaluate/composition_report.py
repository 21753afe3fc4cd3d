"""Runs the composition evaluation (``genimg.evaluate.composition``) over configurations and writes its report:
a JSON file, a Markdown table per family and configuration beside GenEval's published anchors, and a contact sheet
(each task's first prompts, a green frame for a hit, red for a miss)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from genimg.evaluate.composition import (GENEVAL_ANCHORS, TASKS, GlyphClassifier, composition_prompts, oracle_scene,
                                         score, timed_generations)
from genimg.hardware import cpu_name


@dataclass(frozen=True)
class CompositionConfig:
    label: str
    backend: str
    steps: int | None = None  # None: the backend's default
    tiny_decoder: bool = False
    best_of: int = 1  # candidates drawn per image, the judge keeps the one that fits the scene best
    # True: a scene's objects drawn one at a time and arranged (generate's layout, on by default for users); False:
    # the model draws the whole scene itself, what its training taught it.
    layout: bool = False


COMPOSITION_CONFIGS = (
    CompositionConfig("latent", "latent", 20),
    CompositionConfig("latent+layout", "latent", 20, layout=True),
    CompositionConfig("latent-lcm-2-tiny", "latent-lcm", 2, tiny_decoder=True),
    CompositionConfig("latent-lcm-2-tiny+layout", "latent-lcm", 2, tiny_decoder=True, layout=True),
    CompositionConfig("latent-lcm-2-tiny-best-of-4", "latent-lcm", 2, tiny_decoder=True, best_of=4),
    CompositionConfig("gan", "gan"),
    CompositionConfig("gan+layout", "gan", layout=True),
    CompositionConfig("vae", "vae"),
    CompositionConfig("vae+layout", "vae", layout=True),
)


def select(labels: list | None) -> list[CompositionConfig]:
    from genimg.errors import InvalidRequest

    if not labels:
        return list(COMPOSITION_CONFIGS)
    known = {c.label for c in COMPOSITION_CONFIGS} | {c.backend for c in COMPOSITION_CONFIGS}
    unknown = sorted(set(labels) - known)
    if unknown:
        raise InvalidRequest(f"Unknown composition config {', '.join(unknown)}: choose from {', '.join(sorted(known))}.")
    return [c for c in COMPOSITION_CONFIGS if c.label in labels or c.backend in labels]


def evaluate_composition(configs: list[CompositionConfig], images_per_prompt: int = 4, seed: int = 0,
                         device: str = "auto", precision: str = "fp32") -> tuple[dict, dict]:
    """(report, {label: images per prompt}) for the oracle and every config."""
    import genimg
    from genimg.train.data import find_font, load_dataset
    from genimg.train.scenes import SceneRenderer

    renderer = SceneRenderer(load_dataset("emoji"), find_font())
    prompts = composition_prompts(renderer.own_colours, seed=seed)
    classifier = GlyphClassifier(renderer)
    rng = np.random.default_rng(seed)
    drawn = {"oracle": [[renderer.draw(oracle_scene(p), rng) for _ in range(images_per_prompt)] for p in prompts]}
    rows = [{"config": "oracle", "backend": "scenes rendered from the font", **score(prompts, drawn["oracle"],
                                                                                      classifier)}]
    started, load_before = time.perf_counter(), os.getloadavg()
    for config in tqdm(configs, desc="composition", unit="config"):
        generator = genimg.load(config.backend, device=device, precision=precision, tiny_decoder=config.tiny_decoder)
        kwargs = {"steps": config.steps, "layout": config.layout, "best_of": config.best_of}
        timed_generations(generator, prompts[:1], images_per_prompt, seed, **kwargs)  # warm-up
        images, ms = timed_generations(generator, prompts, images_per_prompt, seed, **kwargs)
        drawn[config.label] = images
        rows.append({"config": config.label, "backend": config.backend, "steps": config.steps,
                     "best_of": config.best_of, "layout": config.layout, "ms_per_image": round(ms, 2),
                     **score(prompts, images, classifier)})
    report = {"date": time.strftime("%Y-%m-%d"), "hardware": cpu_name(), "images_per_prompt": images_per_prompt,
              "seed": seed, "precision": precision, "prompts": [p.prompt for p in prompts],
              "load_average": [load_before, os.getloadavg()], "seconds": round(time.perf_counter() - started, 1),
              "rows": rows}
    return report, drawn


def to_markdown(report: dict) -> str:
    header = "| config | ms / image | " + " | ".join(TASKS) + " | **overall** |"
    lines = [f"# Composition, GenEval's six tasks in the emoji world ({report['date']})", "",
             f"{len(report['prompts'])} held-out prompts (16 per task) x {report['images_per_prompt']} images, "
             f"seed {report['seed']}, {report['precision']}; {report['hardware']}, load average "
             f"{report['load_average'][0][0]:.1f} -> {report['load_average'][1][0]:.1f}. Each image right or wrong by "
             "rule (`genimg.evaluate.composition`); `oracle` is the scenes rendered from the font. A row without "
             "`+layout` is the model drawing the whole scene itself; `+layout` (generate's default) has it draw each "
             "object alone and arranges the drawings as the scene says.", "",
             f"Made by `python -m genimg evaluate --composition --images-per-prompt {report['images_per_prompt']} "
             f"--seed {report['seed']}`.", "",
             header, "|---|---:|" + "---:|" * (len(TASKS) + 1)]
    for row in report["rows"]:
        ms = f"{row['ms_per_image']:.1f}" if row.get("ms_per_image") else "-"
        cells = " | ".join(f"{row['tasks'].get(task, float('nan')):.2f}" for task in TASKS)
        lines.append(f"| {row['config']} | {ms} | {cells} | **{row['overall']:.2f}** |")
    lines += ["", "GenEval's published overall scores, for scale (another world: real photos, a detector): "
              + ", ".join(f"{name} {value:.2f}" for name, value in GENEVAL_ANCHORS.items()) + ".", "",
              "Misses per config (the prompts with at least one wrong image):", ""]
    for row in report["rows"]:
        misses = [f"{p['prompt']} ({sum(p['hits'])}/{len(p['hits'])})" for p in row["per_prompt"] if not all(p["hits"])]
        lines.append(f"- **{row['config']}**: " + ("; ".join(misses) if misses else "none"))
    return "\n".join(lines) + "\n"


def contact_sheet(report: dict, drawn: dict, per_task: int = 6, scale: int = 2) -> Image.Image:
    """Rows: configs x tasks; columns: each task's first prompts (first image), framed green (hit) or red (miss)."""
    tile, label_width = 64 * scale + 4, 150
    rows = [(row, task) for row in report["rows"] for task in TASKS]
    sheet = Image.new("RGB", (label_width + per_task * tile, len(rows) * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for y, (row, task) in enumerate(rows):
        draw.text((4, y * tile + 4), f"{row['config']}\n{task}", fill="black")
        entries = [(i, p) for i, p in enumerate(row["per_prompt"]) if p["task"] == task][:per_task]
        for x, (index, entry) in enumerate(entries):
            image = Image.fromarray(drawn[row["config"]][index][0]).resize((64 * scale, 64 * scale), Image.NEAREST)
            left, top = label_width + x * tile, y * tile
            draw.rectangle([left, top, left + tile - 1, top + tile - 1], fill="green" if entry["hits"][0] else "red")
            sheet.paste(image, (left + 2, top + 2))
    return sheet
