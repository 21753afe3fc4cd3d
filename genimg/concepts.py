"""Concept matching: what a user types, mapped onto the emoji the embedded models were trained to draw.

The embedded generators learned ~3,800 emoji from their names, aliases and a few phrasings; a paraphrase ("a cute
puppy") reaches them only as far as their small text conditioning generalises. The frozen MiniLM is a sentence-
similarity model, so the nearest training caption to a prompt (cosine of sentence embeddings) names the emoji the
user most likely means. With matching on, the generator draws that emoji's name and the result says so (``drawn_as``);
the evaluation reports prompt-match with matching on and off. The index is the caption embeddings, int8 with a scale
per row (3.4 MB), built by ``python -m genimg train concepts``.

Drawing a matched emoji needs its name's token embeddings (the UNet's context). ``NameContexts`` holds them for every
name, computed once by MiniLM in fp32 and stored int8 with a scale per token (35 MB, read through a memory map: a
process touches only the names it draws), so a new prompt costs one short pass of the text encoder instead of two.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from genimg.assets import ASSETS
from genimg.errors import ModelLoadError

CONCEPTS = ASSETS / "concepts"
# Captions of other emoji within this cosine of the best one are other senses of the same words: "turkey" is both
# the bird's name and an alias of the flag of Türkiye, and MiniLM (uncased) gives the two captions one embedding.
AMBIGUITY_MARGIN = 0.02
# ... and only where the words themselves matched (a caption this near): a weak nearest neighbour has no "senses".
AMBIGUOUS_ABOVE = 0.8
NAME_CONTEXTS = "name_contexts.safetensors"
OWN_COLOURS = "own_colours.json"  # {emoji name: the colour words of its own glyph}
# The table's sentence embeddings against the generator's own encoder: fp16 storage and a bf16 or int8-weight encoder
# stay above 0.998; a table from other weights falls far below.
MIN_TABLE_COSINE = 0.9


def int8_rows(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 with one scale per row (the last dimension): (quantised, scales), both contiguous; quantised * scales
    gives the tensor back to within half a step."""
    scales = tensor.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8) / 127
    return (tensor / scales).round().clamp(-127, 127).to(torch.int8).contiguous(), scales.contiguous()


@dataclass(frozen=True)
class ConceptMatch:
    prompt: str  # as the user typed it (cleaned)
    concept: str  # the emoji name the generator draws
    caption: str  # the training caption closest to the prompt
    similarity: float  # cosine of the MiniLM sentence embeddings, -1..1
    ambiguous_with: tuple = ()  # other emoji the prompt matched as closely (other senses of its words)
    scene: object = None  # the genimg.scene.Scene the prompt describes, where it is more than one plain emoji

    def as_info(self) -> dict:
        info = {"concept": self.concept, "matched_caption": self.caption, "similarity": round(self.similarity, 3)}
        if self.ambiguous_with:
            info["ambiguous_with"] = list(self.ambiguous_with)
        if self.scene is not None:
            info["scene"] = self.scene.as_info()
        return info


class ConceptIndex:
    """Every caption's sentence embedding and the emoji it belongs to."""

    def __init__(self, names: list[str], captions: list[str], emoji_of_caption: torch.Tensor,
                 embeddings: torch.Tensor):
        if not (len(captions) == len(emoji_of_caption) == len(embeddings)):
            raise ModelLoadError("The concept index is inconsistent (captions, emoji and embeddings differ in length).")
        self.names, self.captions = names, captions
        self.emoji_of_caption = emoji_of_caption.long()
        # Stored transposed, (384, captions) contiguous: the product with a prompt reads the matrix in order, 0.7 ms
        # against 1.6 ms through a transposed view when a generation has just pushed it out of the CPU's caches.
        self.embeddings_by_dim = torch.nn.functional.normalize(embeddings.float(), dim=-1).T.contiguous()

        self.name_contexts: NameContexts | None = None  # every name's context, where the index folder has them
        self.own_colours: dict[str, list[str]] = {}  # each emoji's own colours, where the index folder has them

    @classmethod
    def load(cls, folder: Path = CONCEPTS) -> "ConceptIndex":
        folder = Path(folder)
        try:
            meta = json.loads((folder / "concepts.json").read_text())
            tensors = load_file(folder / "embeddings.safetensors")
        except (OSError, ValueError, SafetensorError) as error:
            raise ModelLoadError(f"Could not read the concept index in {folder} ({error}); rebuild it with "
                                 "`python -m genimg train concepts` or load with match_concepts=False.") from error
        embeddings = tensors["embeddings"].float() * tensors["scales"].float()
        index = cls(meta["names"], meta["captions"], tensors["emoji_of_caption"], embeddings)
        if (folder / NAME_CONTEXTS).exists():
            index.name_contexts = NameContexts(folder / NAME_CONTEXTS, index.names)
        if (folder / OWN_COLOURS).exists():
            try:
                index.own_colours = json.loads((folder / OWN_COLOURS).read_text())
            except (OSError, ValueError) as error:
                raise ModelLoadError(f"Could not read {folder / OWN_COLOURS} ({error}); rebuild it with "
                                     "`python -m genimg train concepts`.") from error
        return index

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        quantised, scales = int8_rows(self.embeddings_by_dim.T)
        save_file({"embeddings": quantised, "scales": scales.half(),
                   "emoji_of_caption": self.emoji_of_caption.to(torch.int32)}, folder / "embeddings.safetensors")
        (folder / "concepts.json").write_text(json.dumps({"names": self.names, "captions": self.captions}) + "\n")

    def match(self, prompts: list[str], sentence_embeddings: torch.Tensor) -> list[ConceptMatch]:
        """The nearest caption to each prompt's (L2-normalised) sentence embedding; where captions of several emoji
        are about as near (within AMBIGUITY_MARGIN), the common sense of the words wins (see ``_common_sense``)."""
        # The index stays on the CPU (a few thousand captions): the prompts' embeddings come from wherever the text
        # encoder runs (the GPU on CUDA) and are brought here.
        similarity = sentence_embeddings.detach().float().cpu() @ self.embeddings_by_dim
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


class NameContexts:
    """Every emoji name's token embeddings (batch of one: (CONTEXT_TOKENS, 384), int8 with a scale per token) and
    sentence embedding (fp16), as the frozen MiniLM gives them in fp32. Built by ``save`` (``python -m genimg train
    concepts``); read lazily through safetensors' memory map."""

    def __init__(self, path: Path, names: list[str]):
        try:
            self._file = safe_open(str(path), framework="pt")
            self._tokens, self._scales = self._file.get_slice("tokens"), self._file.get_slice("token_scales")
            self._pooled = self._file.get_tensor("pooled")
        except (OSError, ValueError, KeyError, SafetensorError) as error:
            raise ModelLoadError(f"Could not read the names' contexts in {path} ({error}); rebuild them with "
                                 "`python -m genimg train concepts`.") from error
        if self._tokens.get_shape()[0] != len(names) or len(self._pooled) != len(names):
            raise ModelLoadError(f"{path} holds {len(self._pooled)} names, the index {len(names)}; rebuild them with "
                                 "`python -m genimg train concepts`.")
        self._row = {name: row for row, name in enumerate(names)}

    @property
    def context_tokens(self) -> int:
        return self._tokens.get_shape()[1]

    def lookup(self, names: list[str]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(len(names), CONTEXT_TOKENS, 384) token embeddings and (len(names), 384) sentence embeddings, float32; None
        where a name is not in the table."""
        if any(name not in self._row for name in names):
            return None
        rows = [self._row[name] for name in names]
        tokens = torch.cat([self._tokens[row:row + 1] for row in rows]).float()
        scales = torch.cat([self._scales[row:row + 1] for row in rows]).float()
        return tokens * scales, self._pooled[rows].float()

    def disagreement(self, text_encoder, names: int = 3) -> str | None:
        """Why this table does not stand for ``text_encoder`` (None: it does), checked on a few names through the
        encoder's sentence pooler, the pass a generator runs anyway: another context length, or sentence embeddings
        further from the encoder's than precision explains (the encoder's weights changed since the table was
        built)."""
        if self.context_tokens != text_encoder.tokenizer.model_max_length:
            return (f"it holds {self.context_tokens} tokens per name, the text encoder gives "
                    f"{text_encoder.tokenizer.model_max_length}")
        sample = sorted(self._row, key=len)[-names:]  # the longest names: the most tokens in each mean
        _, pooled = self.lookup(sample)
        encoded, _ = text_encoder.sentence_embeddings(sample)
        if encoded.shape != pooled.shape:
            return f"its embeddings have {pooled.shape[-1]} values, the text encoder's {encoded.shape[-1]}"
        cosine = (encoded.float().cpu() * pooled).sum(-1).min().item()
        if cosine < MIN_TABLE_COSINE:
            return f"sentence cosine to the text encoder {cosine:.3f}, below {MIN_TABLE_COSINE}"
        return None

    @staticmethod
    def save(path: Path, tokens: torch.Tensor, pooled: torch.Tensor) -> None:
        """tokens (names, CONTEXT_TOKENS, 384) and pooled (names, 384), one row per name in the index's order."""
        quantised, scales = int8_rows(tokens)
        save_file({"tokens": quantised, "token_scales": scales.half(),
                   "pooled": pooled.half().contiguous()}, path)
