"""Concept matching: what a user types, mapped onto the emoji the embedded models were trained to draw.

The embedded generators learned ~3,800 emoji from their names, aliases and a few phrasings; a paraphrase ("a cute
puppy") reaches them only as far as their small text conditioning generalises. The frozen MiniLM is a sentence-
similarity model, so the nearest training caption to a prompt (cosine of sentence embeddings) names the emoji the
user most likely means. With matching on, the generator draws that emoji's name and the result says so (``drawn_as``);
the evaluation reports prompt-match with matching on and off. The index is the caption embeddings, int8 with a scale
per row (3.4 MB), built by ``python -m genimg train concepts``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from genimg.assets import ASSETS
from genimg.errors import ModelLoadError

CONCEPTS = ASSETS / "concepts"
# Captions of other emoji within this cosine of the best one are other senses of the same words: "turkey" is both
# the bird's name and an alias of the flag of Türkiye, and MiniLM (uncased) gives the two captions one embedding.
AMBIGUITY_MARGIN = 0.02
# ... and only where the words themselves matched (a caption this near): a weak nearest neighbour has no "senses".
AMBIGUOUS_ABOVE = 0.8


@dataclass(frozen=True)
class ConceptMatch:
    prompt: str  # as the user typed it (cleaned)
    concept: str  # the emoji name the generator draws
    caption: str  # the training caption closest to the prompt
    similarity: float  # cosine of the MiniLM sentence embeddings, -1..1
    ambiguous_with: tuple = ()  # other emoji the prompt matched as closely (other senses of its words)

    def as_info(self) -> dict:
        info = {"concept": self.concept, "matched_caption": self.caption, "similarity": round(self.similarity, 3)}
        if self.ambiguous_with:
            info["ambiguous_with"] = list(self.ambiguous_with)
        return info


class ConceptIndex:
    """Every caption's sentence embedding and the emoji it belongs to."""

    def __init__(self, names: list[str], captions: list[str], emoji_of_caption: torch.Tensor,
                 embeddings: torch.Tensor):
        if not (len(captions) == len(emoji_of_caption) == len(embeddings)):
            raise ModelLoadError("The concept index is inconsistent (captions, emoji and embeddings differ in length).")
        self.names, self.captions = names, captions
        self.emoji_of_caption = emoji_of_caption.long()
        self.embeddings = torch.nn.functional.normalize(embeddings.float(), dim=-1)

    @classmethod
    def load(cls, folder: Path = CONCEPTS) -> "ConceptIndex":
        folder = Path(folder)
        try:
            meta = json.loads((folder / "concepts.json").read_text())
            tensors = load_file(folder / "embeddings.safetensors")
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"Could not read the concept index in {folder} ({error}); rebuild it with "
                                 "`python -m genimg train concepts` or load with match_concepts=False.") from error
        embeddings = tensors["embeddings"].float() * tensors["scales"].float()
        return cls(meta["names"], meta["captions"], tensors["emoji_of_caption"], embeddings)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        scales = self.embeddings.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127
        quantised = (self.embeddings / scales).round().clamp(-127, 127).to(torch.int8)
        save_file({"embeddings": quantised, "scales": scales.half(),
                   "emoji_of_caption": self.emoji_of_caption.to(torch.int32)}, folder / "embeddings.safetensors")
        (folder / "concepts.json").write_text(json.dumps({"names": self.names, "captions": self.captions}) + "\n")

    def match(self, prompts: list[str], sentence_embeddings: torch.Tensor) -> list[ConceptMatch]:
        """The nearest caption to each prompt's (L2-normalised) sentence embedding; where captions of several emoji
        are about as near (within AMBIGUITY_MARGIN), the common sense of the words wins (see ``_common_sense``)."""
        # The index stays on the CPU (a few thousand captions): the prompts' embeddings come from wherever the text
        # encoder runs (the GPU on CUDA) and are brought here.
        similarity = sentence_embeddings.detach().float().cpu() @ self.embeddings.T
        nearest = similarity.topk(min(16, similarity.shape[1]), dim=1)
        return [self._common_sense(prompt, values.tolist(), indices.tolist())
                for prompt, values, indices in zip(prompts, nearest.values, nearest.indices)]

    def _common_sense(self, prompt: str, values: list[float], indices: list[int]) -> ConceptMatch:
        """Among the emoji whose best caption is within the margin of the nearest one, the emoji whose own name
        (or "a/an <name>") the prompt matched beats one matched through an alias: "turkey" is the bird, whose name
        it is, not the flag of Türkiye, whose alias it is. Otherwise the nearest caption wins."""
        senses = {}  # emoji -> (similarity, caption index) of its nearest caption, nearest emoji first
        for value, index in zip(values, indices):
            if value < values[0] - AMBIGUITY_MARGIN or (senses and values[0] < AMBIGUOUS_ABOVE):
                break
            senses.setdefault(int(self.emoji_of_caption[index]), (value, index))
        chosen = max(senses, key=lambda emoji: (self._is_own_name(emoji, senses[emoji][1]), senses[emoji][0]))
        value, index = senses[chosen]
        others = tuple(self.names[emoji] for emoji in senses if emoji != chosen)
        return ConceptMatch(prompt, self.names[chosen], self.captions[index], float(value), others)

    def _is_own_name(self, emoji: int, caption_index: int) -> bool:
        name, caption = self.names[emoji].casefold(), self.captions[caption_index].casefold()
        return caption in (name, f"a {name}", f"an {name}")
