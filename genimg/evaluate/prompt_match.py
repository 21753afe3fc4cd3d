"""``python -m genimg evaluate``: does each backend draw the emoji it was asked for?

Prompt match is measured as retrieval of the intended emoji among every emoji in the dataset, two ways:
``judge`` ranks all emoji names by the judge's similarity between the generated image and each name's text embedding;
``pixels`` ranks all dataset images by L2 distance to the generated image (64x64 RGB). A prompt scores a top-k hit
when its intended emoji ranks within the first k. Prompts come in two sets: ``names`` (dataset names drawn with a
fixed seed, each generated from its plain name) and ``paraphrases`` (what a user would type, see PARAPHRASES).
Every config runs with concept matching off (the model alone); the paraphrases run again with it on
(``paraphrases_matched``: each prompt drawn as the emoji whose caption is nearest, see ``genimg.concepts``), and
``names_kept_by_matching`` says how many names matching leaves as they are (for those, the names scores hold with it
on).
The ``oracle`` row scores the real dataset images the same way: the ceiling the metrics allow.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from genimg.assets import ASSETS
from genimg.errors import GenimgError, InvalidRequest
from genimg.options import Request, clean_prompt
from genimg.timing import StageTimer
from genimg.train.data import EmojiDataset


@dataclass(frozen=True)
class EvalConfig:
    """One row of the evaluation: a backend and how it is run."""

    label: str
    backend: str
    steps: int | None = None  # None: the backend's default
    tiny_decoder: bool = False
    engine: str = "torch"  # or "openvino" (CPU)
    quantize: str | None = None  # or "int8"
    pruned: bool = False  # the channel-pruned weights (gan, latent)
    text_engine: str | None = None  # the text encoder's engine (None: as engine), e.g. "openvino-int8"
    precision: str | None = None  # None: the evaluation's --precision


CONFIGS = (
    EvalConfig("gan", "gan"),
    EvalConfig("vae", "vae"),
    EvalConfig("latent", "latent", 20),
    EvalConfig("latent-tiny", "latent", 20, tiny_decoder=True),
    EvalConfig("latent-lcm-1", "latent-lcm", 1),
    EvalConfig("latent-lcm-1-tiny", "latent-lcm", 1, tiny_decoder=True),
    EvalConfig("latent-lcm-2", "latent-lcm", 2),
    EvalConfig("latent-lcm-4", "latent-lcm", 4),
    EvalConfig("latent-lcm-4-tiny", "latent-lcm", 4, tiny_decoder=True),
)
# The same models on the OpenVINO engine and quantised: chosen by label, or all of them as "engines".
ENGINE_CONFIGS = (
    EvalConfig("gan-openvino-int8", "gan", engine="openvino", quantize="int8"),
    EvalConfig("latent-openvino", "latent", 20, engine="openvino"),
    EvalConfig("latent-openvino-int8", "latent", 20, engine="openvino", quantize="int8"),
    EvalConfig("latent-lcm-1-tiny-openvino-int8", "latent-lcm", 1, tiny_decoder=True, engine="openvino",
               quantize="int8"),
    # The Live tab's default: OpenVINO, the text encoder's weights in int8.
    EvalConfig("latent-lcm-1-tiny-live", "latent-lcm", 1, tiny_decoder=True, engine="openvino",
               text_engine="openvino-int8"),
    # ... and its default where the CPU computes bf16 natively (ui.live.LIVE_PRECISION).
    EvalConfig("latent-lcm-1-tiny-live-bf16", "latent-lcm", 1, tiny_decoder=True, engine="openvino",
               text_engine="openvino-int8", precision="bf16"),
)
# The channel-pruned variants (made by `python -m genimg train prune-*`, not shipped): by label, or "pruned".
PRUNED_CONFIGS = (
    EvalConfig("gan-pruned", "gan", pruned=True),
    EvalConfig("latent-pruned", "latent", 20, pruned=True),
)

# What a user would type -> the dataset name it should produce. None of these is one of the dataset's captions.
PARAPHRASES = {
    "a slice of pizza": "pizza",
    "a cute puppy": "dog face",
    "a shiny red apple": "red apple",
    "a big happy grin": "grinning face",
    "a pine tree": "evergreen tree",
    "the French flag": "France",
    "a fast race car": "racing car",
    "a cup of hot coffee": "hot beverage",
    "a cute kitten": "cat face",
    "laughing so hard I'm crying": "face with tears of joy",
    "a red love heart": "red heart",
    "a carved halloween pumpkin": "jack-o-lantern",
    "a rocket launching into space": "rocket",
    "a birthday cake with candles": "birthday cake",
    "a thumbs-up gesture": "thumbs up",
    "a colorful rainbow": "rainbow",
    "a spooky ghost": "ghost",
    "an acoustic guitar": "guitar",
    "a ripe strawberry": "strawberry",
    "a bunch of purple grapes": "grapes",
    "a yellow banana": "banana",
    "a juicy burger": "hamburger",
    "a glazed donut": "doughnut",
    "a cute bunny": "rabbit face",
    "an elephant with big ears": "elephant",
    "the sun with a smiling face": "sun with face",
    "a bright full moon": "full moon",
    "flames of a campfire": "fire",
    "a black and white football": "soccer ball",
    "a cozy little house": "house",
    "a boat with a sail": "sailboat",
    "a photo camera": "camera",
    "a laptop computer": "laptop",
    "a glowing lightbulb": "light bulb",
    "a gold trophy cup": "trophy",
    "a wrapped present with a bow": "wrapped gift",
    "a cuddly teddy bear": "teddy bear",
    "a penguin standing on ice": "penguin",
    "the flag of Japan": "Japan",
    "the American flag": "United States",
    "a green snake": "snake",
    "a bag full of money": "money bag",
    "a cute panda bear": "panda",
    "a sad face with a tear": "crying face",
    "a buttery croissant": "croissant",
    "a green frog face": "frog",
    "a yellow taxi cab": "taxi",
}

# Top-5 prompt-match targets, per prompt set.
TARGETS = {
    "latent": {"names": 0.95, "paraphrases": 0.85},
    "gan": {"names": 0.85, "paraphrases": 0.70},
    "vae": {"names": 0.75, "paraphrases": 0.60},
}
METRICS = ("judge", "pixels")


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: list
    targets: list  # dataset index of the intended emoji, one per prompt


def name_prompts(dataset: EmojiDataset, limit: int = 200, seed: int = 0) -> PromptSet:
    """``limit`` dataset names drawn with ``seed``; a smaller limit gives a prefix of the same draw."""
    draw = random.Random(seed).sample(range(len(dataset)), len(dataset))[:limit]
    return PromptSet("names", [dataset.names[i] for i in draw], draw)


def paraphrase_prompts(dataset: EmojiDataset) -> PromptSet:
    index = {name: i for i, name in enumerate(dataset.names)}
    missing = sorted(set(PARAPHRASES.values()) - set(index))
    if missing:
        raise InvalidRequest(f"Paraphrase targets missing from the dataset: {', '.join(missing)}.")
    return PromptSet("paraphrases", list(PARAPHRASES), [index[name] for name in PARAPHRASES.values()])


def target_ranks(scores: torch.Tensor, targets) -> np.ndarray:
    """0-based rank of each row's target column (higher score ranks first; a tie goes to the target)."""
    targets = torch.as_tensor(list(targets), dtype=torch.long)
    target_scores = scores.gather(1, targets[:, None])
    return (scores > target_scores).sum(1).numpy()


def top_k(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(ranks < k)) if len(ranks) else float("nan")


class RetrievalIndex:
    """Every dataset emoji, ready to be ranked against generated images by pixels and (with a judge) by name."""

    def __init__(self, dataset: EmojiDataset, judge=None, chunk_size: int = 512):
        self.names = dataset.names
        self.pixels = self._flatten(dataset.images)
        self.pixel_norms = self.pixels.pow(2).sum(1)
        self.judge = judge
        self.name_embeddings = None
        if judge is not None:  # every name is embedded once, however many configs are scored
            self.name_embeddings = torch.cat([judge.text_embeddings(list(self.names[i:i + chunk_size]))
                                              for i in range(0, len(self.names), chunk_size)])

    @staticmethod
    def _flatten(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(images)).reshape(len(images), -1).float() / 255.0

    def pixel_scores(self, images: np.ndarray) -> torch.Tensor:
        """Negative squared L2 distance (pixels in [0, 1]) of each image to every dataset image."""
        query = self._flatten(images)
        return 2 * query @ self.pixels.T - query.pow(2).sum(1, keepdim=True) - self.pixel_norms

    def judge_scores(self, images: np.ndarray) -> torch.Tensor:
        embeddings = self.judge.image_embeddings([Image.fromarray(image) for image in images])
        return embeddings @ self.name_embeddings.T

    def ranks(self, images: np.ndarray, targets) -> dict:
        """Per metric, the rank of each image's intended emoji (0 = retrieved first)."""
        result = {"pixels": target_ranks(self.pixel_scores(images), targets)}
        if self.judge is not None:
            scores = self.judge_scores(images)
            result["judge"] = target_ranks(scores, targets)
            result["judge_best"] = [self.names[i] for i in scores.argmax(1).tolist()]
        return result


def generate_for_prompts(generator, prompts: list, steps: int | None, seed: int) -> np.ndarray:
    """One image per prompt, all in one batch, as uint8 (B, H, W, 3).

    ``generator.generate`` draws a batch for a single prompt; evaluation wants one image for each of many prompts, so
    this runs the backend's batched stage on stacked prompt embeddings, with the same defaults and seeding: row 0
    equals ``generate(prompts[0], steps, batch_size=1, seed=seed)`` (up to batch-size-dependent rounding).
    """
    prompts = [clean_prompt(prompt) for prompt in prompts]
    request = Request(prompts[0], steps, len(prompts), seed).validated()
    request = dataclasses.replace(request, steps=request.steps or generator.default_steps,
                                  guidance=generator.default_guidance)
    with generator.lock, torch.inference_mode():
        timer = StageTimer(generator.device)
        text = generator.encode(prompts, len(prompts), timer)
        images = generator._generate(request, text, timer, None)
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def generate_set(generator, prompt_set: PromptSet, steps: int | None, seed: int, batch_size: int,
                 label: str = "") -> np.ndarray:
    batches = range(0, len(prompt_set.prompts), batch_size)
    images = [generate_for_prompts(generator, prompt_set.prompts[start:start + batch_size], steps, seed + start)
              for start in tqdm(batches, desc=f"{label} {prompt_set.name}", leave=False, unit="batch")]
    return np.concatenate(images)


def names_kept(generator, prompt_set: PromptSet) -> float:
    """The fraction of name prompts that concept matching draws as the very emoji they name."""
    with torch.inference_mode():
        text = generator.encode(prompt_set.prompts, len(prompt_set.prompts), StageTimer(generator.device))
    return float(np.mean([match.concept == prompt for match, prompt in zip(text.matches, prompt_set.prompts)]))


def median_latency_ms(generator, steps: int | None, batch_size: int = 8, runs: int = 3,
                      prompt: str = "a slice of pizza") -> float:
    """Median milliseconds per image of the public ``generate`` at ``batch_size`` (call after a warm-up)."""
    return statistics.median(generator.generate(prompt, steps=steps, batch_size=batch_size, seed=run).per_image_ms
                             for run in range(runs))


def score_set(index: RetrievalIndex, images: np.ndarray, prompt_set: PromptSet) -> tuple[dict, list]:
    """Summary (top-1/top-5 per metric) and per-prompt detail for one prompt set."""
    ranks = index.ranks(images, prompt_set.targets)
    summary = {f"{metric}_top{k}": top_k(ranks[metric], k) for metric in METRICS if metric in ranks for k in (1, 5)}
    detail = []
    for i, prompt in enumerate(prompt_set.prompts):
        entry = {"prompt": prompt, "target": index.names[prompt_set.targets[i]]}
        entry.update({f"{metric}_rank": int(ranks[metric][i]) for metric in METRICS if metric in ranks})
        if "judge_best" in ranks:
            entry["judge_best"] = ranks["judge_best"][i]
        detail.append(entry)
    return summary, detail


def select_configs(names: list | None) -> list:
    """Configs by label (``latent-lcm-2``) or by backend (``latent-lcm``: all its configs); None: all."""
    if not names:
        return list(CONFIGS)
    known = ({c.label for c in CONFIGS + ENGINE_CONFIGS + PRUNED_CONFIGS} | {c.backend for c in CONFIGS}
             | {"engines", "pruned"})
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InvalidRequest(f"Unknown backend/config {', '.join(unknown)}: choose from {', '.join(sorted(known))}.")
    return ([c for c in CONFIGS if c.label in names or c.backend in names]
            + [c for c in ENGINE_CONFIGS if c.label in names or "engines" in names]
            + [c for c in PRUNED_CONFIGS if c.label in names or "pruned" in names])


def check_targets(rows: list) -> list:
    """Pass/miss of each top-5 target, for both metrics, for the configs that were evaluated."""
    checks = []
    for row in rows:
        targets = TARGETS.get(row.get("backend"), {})
        for set_name in ("names", "paraphrases", "paraphrases_matched"):
            threshold = targets.get(set_name.removesuffix("_matched"))
            if threshold is None:
                continue
            for metric in METRICS:
                value = row.get(set_name, {}).get(f"{metric}_top5")
                if value is not None:
                    checks.append({"config": row["config"], "prompt_set": set_name, "metric": f"{metric}_top5",
                                   "target": threshold, "value": value, "met": bool(value >= threshold)})
    return checks


def model_fingerprints(backends: set) -> dict:
    """The first 12 hex digits of each weights file's SHA-256, so a result can be matched to the weights it scored."""
    folders = {"judge", *backends}
    if folders & {"latent", "latent-lcm"}:
        folders |= {"latent", "latent-tiny-decoder"}  # the distilled UNet decodes with the teacher's autoencoders
    return {str(path.relative_to(ASSETS)): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            for folder in sorted(folders) for path in sorted((ASSETS / folder).rglob("*.safetensors"))}


def evaluate(dataset: EmojiDataset, configs: list, judge, limit: int = 200, seed: int = 0, batch_size: int = 16,
             latency_batch_size: int = 8, latency_runs: int = 3, device: str = "auto", precision: str = "fp32",
             on_images=None) -> dict:
    """The full report (see the module docstring). ``on_images(label, set_name, images)`` sees every generation."""
    import genimg

    started = time.perf_counter()
    load_before = os.getloadavg()
    models = model_fingerprints({config.backend for config in configs})
    prompt_sets = [name_prompts(dataset, limit, seed), paraphrase_prompts(dataset)]
    index = RetrievalIndex(dataset, judge)
    rows, details = [], {}
    oracle = {"config": "oracle", "backend": "dataset images", "steps": None, "latency_ms_per_image": None}
    for prompt_set in prompt_sets:
        oracle[prompt_set.name], details.setdefault("oracle", {})[prompt_set.name] = score_set(
            index, dataset.images[prompt_set.targets], prompt_set)
    rows.append(oracle)
    for config in tqdm(configs, desc="evaluate", unit="config"):
        config_start = time.perf_counter()
        options = dict(device=device, precision=config.precision or precision, engine=config.engine,
                       quantize=config.quantize, tiny_decoder=config.tiny_decoder, pruned=config.pruned,
                       text_engine=config.text_engine)
        try:
            generator = genimg.load(config.backend, match_concepts=False, **options)
        except (GenimgError, OSError) as error:  # one unloadable model should not cost the other rows
            rows.append({"config": config.label, "backend": config.backend, "steps": config.steps,
                         "latency_ms_per_image": None, "error": f"{type(error).__name__}: {error}"})
            continue
        row = {"config": config.label, "backend": config.backend, "steps": config.steps or generator.default_steps,
               "guidance": generator.default_guidance, "tiny_decoder": config.tiny_decoder,
               "precision": options["precision"]}
        matched = genimg.load(config.backend, match_concepts=True, **options)
        runs = [(generator, prompt_set, prompt_set.name) for prompt_set in prompt_sets]
        runs.append((matched, prompt_sets[1], "paraphrases_matched"))
        for model, prompt_set, key in runs:
            images = generate_set(model, prompt_set, config.steps, seed, batch_size, config.label)
            if on_images is not None:
                on_images(config.label, key, images)
            row[key], details.setdefault(config.label, {})[key] = score_set(index, images, prompt_set)
        row["names_kept_by_matching"] = names_kept(matched, prompt_sets[0])
        row["latency_ms_per_image"] = median_latency_ms(generator, config.steps, latency_batch_size, latency_runs)
        row["seconds"] = time.perf_counter() - config_start
        rows.append(row)
    return {
        "dataset": {"num_emoji": len(dataset), "names_limit": limit, "seed": seed},
        "models": models,
        "prompt_sets": {s.name: len(s.prompts) for s in prompt_sets},
        "settings": {"device": genimg.SpeedOptions(device=device).validated().device, "precision": precision,
                     "generation_batch_size": batch_size, "latency_batch_size": latency_batch_size,
                     "latency_runs": latency_runs, "torch_threads": torch.get_num_threads(),
                     "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "rows": rows,
        "targets": check_targets(rows),
        "seconds": time.perf_counter() - started,
        "per_prompt": details,
    }


def _pair(summary: dict | None, metric: str) -> str:
    if not summary or f"{metric}_top1" not in summary:
        return "–"
    return f"{100 * summary[f'{metric}_top1']:.1f} / {100 * summary[f'{metric}_top5']:.1f}"


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def to_markdown(report: dict) -> str:
    """The results table and the target checks, as markdown."""
    sets = report["prompt_sets"]
    lines = [f"Top-1 / top-5 retrieval (%) of the intended emoji among all {report['dataset']['num_emoji']}: "
             f"`judge` ranks every emoji name by the judge's image-text similarity, `pixels` ranks every dataset image "
             f"by L2 distance. {sets.get('names', 0)} dataset names, {sets.get('paraphrases', 0)} paraphrases. "
             f"Latency: median ms per image at batch {report['settings']['latency_batch_size']} on "
             f"{report['settings']['device']} ({report['settings']['precision']}).", "",
             "Paraphrases matched: the same paraphrases with concept matching on (each drawn as the emoji whose "
             "caption is nearest to it); matching leaves the names as they are where `kept` says 100%.", "",
             "| config | steps | ms / image | names: judge | names: pixels | paraphrases: judge | paraphrases: pixels "
             "| paraphrases matched: judge | paraphrases matched: pixels | kept |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        if "error" in row:
            lines.append(f"| {row['config']} | not evaluated: {row['error']} ||||||||")
            continue
        latency = "–" if row["latency_ms_per_image"] is None else f"{row['latency_ms_per_image']:.1f}"
        lines.append(f"| {row['config']} | {row['steps'] or '–'} | {latency} | "
                     + " | ".join(_pair(row.get(s), m) for s in ("names", "paraphrases", "paraphrases_matched")
                                  for m in METRICS) + f" | {_percent(row.get('names_kept_by_matching'))} |")
    if report["targets"]:
        lines += ["", "Targets (top-5):", "", "| config | prompt set | target | metric | value | result |",
                  "|---|---|---:|---|---:|---|"]
        for check in report["targets"]:
            lines.append(f"| {check['config']} | {check['prompt_set']} | ≥ {100 * check['target']:.0f}% | "
                         f"{check['metric']} | {100 * check['value']:.1f}% | {'met' if check['met'] else 'MISSED'} |")
    return "\n".join(lines) + "\n"
