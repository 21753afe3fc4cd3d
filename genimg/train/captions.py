"""The captions the generators learn from: the dataset's, with two corrections for how people write prompts.

1. **A name belongs to its emoji.** The ``emoji`` package gives some emoji an alias that is another emoji's name
   (GitHub's ``:cat:`` is "cat face", while "cat" is the name of the whole cat; "dog", "pig", "train", "egg",
   "Turkey"...: 23 of them). Trained on both, the UNet drew "cat" as a cat face. Such an alias is dropped from the
   emoji that borrows it; the concept index keeps every alias and settles the tie itself (see ``genimg.concepts``).
2. **Words people use for an emoji.** Names are CLDR's ("mobile phone", "dog"); people type "smartphone", "puppy".
   Each MiniLM vocabulary word whose sentence embedding lies near one distinct emoji's name (cosine >=
   ``NEIGHBOUR_MIN_SIMILARITY``) and clearly nearer it than any other (by ``NEIGHBOUR_MARGIN``) becomes a caption
   of that emoji (the family's base emoji, not its skin-tone variants). Taken from the sentence model, never from
   the evaluation's paraphrases.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch
from torch.nn import functional as F

from genimg.train.data import EmojiDataset, cache_dir, skin_tone_family, with_article

NEIGHBOUR_MIN_SIMILARITY = 0.78  # below it, neighbours drift to look-alike spellings ("dumping" -> dumpling)
NEIGHBOUR_MARGIN = 0.05  # over the second-nearest name: "bar" is near "chocolate bar" and "bar chart" alike
_WORD = re.compile(r"[a-z]{3,}")


def without_borrowed_names(names: list[str], captions: list[list[str]]) -> list[list[str]]:
    """Each emoji's captions less any alias that is another emoji's name (case-insensitive)."""
    owner = {name.casefold(): index for index, name in enumerate(names)}
    return [[c for c in caption_list if owner.get(c.casefold(), index) == index]
            for index, caption_list in enumerate(captions)]


def vocabulary_words() -> list[str]:
    """MiniLM's whole-word vocabulary entries of three letters or more (no word pieces, digits or punctuation)."""
    from genimg.text import load_tokenizer

    return sorted(word for word in load_tokenizer().get_vocab() if _WORD.fullmatch(word))


@torch.no_grad()
def _sentence_embeddings(texts: list[str], encoder) -> torch.Tensor:
    chunks = [encoder.encode(texts[start:start + 512]).pooled.float() for start in range(0, len(texts), 512)]
    return F.normalize(torch.cat(chunks), dim=-1)


def name_neighbours(names: list[str], captions: list[list[str]], words: list[str], encoder) -> dict[str, list[str]]:
    """{family name: [vocabulary words that mean it]}, for the distinct emoji (a skin-tone family counts once, by
    its base name). A word already a caption of any emoji is left out."""
    families = sorted({skin_tone_family(name) for name in names})
    taken = {caption.casefold() for caption_list in captions for caption in caption_list}
    words = [word for word in words if word not in taken]
    if not words or not families:
        return {}
    similarity = _sentence_embeddings(words, encoder) @ _sentence_embeddings(families, encoder).T
    best = similarity.topk(min(2, len(families)), dim=1)
    second = best.values[:, 1] if len(families) > 1 else torch.full_like(best.values[:, 0], -1.0)
    neighbours: dict[str, list[str]] = {}
    for word, value, runner_up, family in zip(words, best.values[:, 0].tolist(), second.tolist(),
                                              best.indices[:, 0].tolist()):
        if value >= NEIGHBOUR_MIN_SIMILARITY and value - runner_up >= NEIGHBOUR_MARGIN:
            neighbours.setdefault(families[family], []).append(word)
    return neighbours


def _fingerprint(*parts) -> str:
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:12]


def neighbours_path(dataset: EmojiDataset, kind: str) -> Path:
    """Where a dataset's neighbours are cached (a GPU host without the full MiniLM is handed the file)."""
    key = _fingerprint(dataset.names, dataset.captions, NEIGHBOUR_MIN_SIMILARITY, NEIGHBOUR_MARGIN)
    return cache_dir() / f"neighbours-{kind}-{key}.json"


def cached_name_neighbours(dataset: EmojiDataset, kind: str) -> dict[str, list[str]]:
    """``name_neighbours`` over MiniLM's vocabulary, computed once (about a minute on 2 CPU cores) and cached."""
    from genimg.text import TextEncoder

    path = neighbours_path(dataset, kind)
    if path.exists():
        return json.loads(path.read_text())
    neighbours = name_neighbours(dataset.names, dataset.captions, vocabulary_words(), TextEncoder(cache_size=0))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(neighbours, indent=1, sort_keys=True))
    return neighbours


def generator_captions(dataset: EmojiDataset, neighbours: dict[str, list[str]]) -> list[list[str]]:
    """The captions the generators train on: borrowed names dropped, each neighbour word added to the emoji whose name
    it is near (a family's base emoji: "puppy" draws the dog, not a skin-tone variant of anything), bare and, unless
    it looks plural, as "a/an <word>"."""
    captions = without_borrowed_names(dataset.names, dataset.captions)
    return [caption_list + [text for word in neighbours.get(name, [])
                            for text in ((word,) if word.endswith("s") else (word, with_article(word)))]
            for name, caption_list in zip(dataset.names, captions)]


def captions_fingerprint(captions: list[list[str]]) -> str:
    """A short key of a caption set: caches built from other captions are not reused."""
    return _fingerprint(captions)
