"""Pack what a GPU training run needs into .devdata/, small enough for a remote GPU machine that takes at most 64 MiB
a transfer (tools/gpu_stage.sh's header describes such machines; docs/training.md the training runs).

The MiniLM is carried with only the word pieces the training captions use (exact outputs for those ids, 22 MB in fp16
instead of 45), the captions pre-tokenised with the remapped ids, and the images xz-compressed.
Usage: python tools/pack_device_data.py [--init assets/models/latent]
"""
from __future__ import annotations

import argparse
import json
import lzma
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from genimg.text import load_tokenizer, minilm_folder
from genimg.train.captions import cached_name_neighbours, generator_captions
from genimg.train.data import load_dataset

OUT = Path(".devdata")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--init", type=Path, help="a pipeline folder to fine-tune from (copied as .devdata/init)")
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "minilm").mkdir(parents=True)
    dataset = load_dataset("emoji")
    (OUT / "images.u8.xz").write_bytes(lzma.compress(dataset.images.tobytes(), preset=9))
    neighbours = cached_name_neighbours(dataset, "emoji")  # the host has only a trimmed MiniLM: it gets them made
    (OUT / "meta.json").write_text(json.dumps({"shape": list(dataset.images.shape), "names": dataset.names,
                                               "captions": dataset.captions, "chars": dataset.chars,
                                               "neighbours": neighbours}))
    tokenizer = load_tokenizer()
    training = generator_captions(dataset, neighbours)
    captions = [c for caption_list in training for c in caption_list]
    batch = tokenizer(captions + [""], padding="max_length", truncation=True, return_tensors="pt")
    used = torch.unique(batch["input_ids"])  # sorted: [PAD] (0) stays 0
    remap = torch.full((tokenizer.vocab_size,), -1, dtype=torch.long)
    remap[used] = torch.arange(len(used))
    torch.save({"input_ids": remap[batch["input_ids"]].short(), "attention_mask": batch["attention_mask"].bool(),
                "emoji_of_caption": torch.tensor([i for i, cs in enumerate(training) for _ in cs])},
               OUT / "caption_ids.pt")
    weights = load_file(minilm_folder() / "model.safetensors")
    weights["embeddings.word_embeddings.weight"] = weights["embeddings.word_embeddings.weight"][used]
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()
               if not k.startswith("pooler")}, OUT / "minilm" / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((minilm_folder() / "config.json").read_text())
    (OUT / "minilm" / "config.json").write_text(json.dumps({**config, "vocab_size": len(used)}))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_folder() / name, OUT / "minilm" / name)
    if args.init:
        for part in ("unet", "vae", "scheduler"):
            shutil.copytree(args.init / part, OUT / "init" / part)
    print(f"{len(used)} word pieces, {len(captions)} captions")


if __name__ == "__main__":
    main()
