"""On the GPU host: rebuild the dataset cache and the caption bank from .devdata/ (see pack_device_data.py)."""
from __future__ import annotations

import json
import lzma
from pathlib import Path

import numpy as np
import torch
from transformers import BertModel

from genimg.text import embed_token_ids
from genimg.train.captions import generator_captions, neighbours_path
from genimg.train.common import caption_bank_path
from genimg.train.data import EmojiDataset, cache_dir

DATA = Path(".devdata")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@torch.no_grad()
def main() -> None:
    meta = json.loads((DATA / "meta.json").read_text())
    images = np.frombuffer(lzma.decompress((DATA / "images.u8.xz").read_bytes()), np.uint8).reshape(meta["shape"])
    cache_dir().mkdir(parents=True, exist_ok=True)
    np.savez(cache_dir() / "emoji64.npz", images=images,
             meta=np.array(json.dumps({k: meta[k] for k in ("names", "captions", "chars")})))
    dataset = EmojiDataset(images, meta["names"], meta["captions"], meta["chars"])
    neighbours_path(dataset, "emoji").write_text(json.dumps(meta["neighbours"]))  # needs the full MiniLM to make
    ids = torch.load(DATA / "caption_ids.pt")
    model = BertModel.from_pretrained(DATA / "minilm", add_pooling_layer=False, dtype=torch.float32).to(DEVICE).eval()
    tokens, pooled = [], []
    for start in range(0, len(ids["input_ids"]), 2048):
        hidden, sentence = embed_token_ids(model, ids["input_ids"][start:start + 2048].long().to(DEVICE),
                                           ids["attention_mask"][start:start + 2048].long().to(DEVICE))
        tokens.append(hidden.half().cpu())
        pooled.append(sentence.half().cpu())
    tokens, pooled = torch.cat(tokens), torch.cat(pooled)
    fields = dict(tokens=tokens[:-1], pooled=pooled[:-1], emoji_of_caption=ids["emoji_of_caption"],
                  empty_tokens=tokens[-1], empty_pooled=pooled[-1])
    torch.save(fields, caption_bank_path("emoji", generator_captions(dataset, meta["neighbours"])))
    print(f"caption bank: {tuple(tokens.shape)}")


if __name__ == "__main__":
    main()
