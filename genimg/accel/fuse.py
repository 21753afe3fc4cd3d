"""Fused attention projections: one matmul for query, key and value (diffusers' ``fuse_qkv_projections``)."""
from __future__ import annotations

import torch

from genimg.accel.notes import add_note


def fuse_qkv(module: torch.nn.Module, notes: list[str], name: str) -> bool:
    """diffusers' ``fuse_qkv_projections`` on the model (or the models directly inside a wrapper) that offers it."""
    candidates = [module] if hasattr(module, "fuse_qkv_projections") else list(module.children())
    fused = False
    for candidate in candidates:
        if hasattr(candidate, "fuse_qkv_projections") and _has_attention(candidate):
            candidate.fuse_qkv_projections()
            fused = True
    if not fused:
        add_note(notes, f"fused QKV: the {name} has no attention projections to fuse; ignored.")
    return fused


def _has_attention(module: torch.nn.Module) -> bool:
    from diffusers.models.attention_processor import Attention

    return any(isinstance(m, Attention) for m in module.modules())
