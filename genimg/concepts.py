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


@dataclass(frozen=True)
class ConceptMatch:
    prompt: str  # as the user typed it (cleaned)
    concept: str  # the emoji name the generator draws
    caption: str  # the training caption closest to the prompt
    similarity: float  # cosine of the MiniLM sentence embeddings, -1..1

    def as_info(self) -> dict:
        return {"concept": self.concept, "matched_caption": self.caption, "similarity": round(self.similarity, 3)}


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
        """The nearest caption to each prompt's (L2-normalised) sentence embedding."""
        similarity = sentence_embeddings.float() @ self.embeddings.T
        best_similarity, best = similarity.max(dim=1)
        return [ConceptMatch(prompt, self.names[self.emoji_of_caption[index]], self.captions[index], float(value))
                for prompt, index, value in zip(prompts, best.tolist(), best_similarity.tolist())]
