"""Applying speed options to modules. Each option is a no-op where the hardware cannot use it, and says so."""
from __future__ import annotations

import torch

from genimg.options import SpeedOptions


def prepare_module(module: torch.nn.Module, options: SpeedOptions, notes: list[str]) -> torch.nn.Module:
    """channels_last and torch.compile, as asked; ``notes`` collects what was skipped and why."""
    if options.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if options.compile:
        module = torch.compile(module, mode="max-autotune-no-cudagraphs" if options.device == "cpu" else "reduce-overhead",
                               fullgraph=False, dynamic=False)
        note = "torch.compile: the first call per batch size compiles (reported as warm-up, not latency)."
        if note not in notes:
            notes.append(note)
    if options.cuda_graphs and not options.device.startswith("cuda"):
        note = "CUDA graphs need a CUDA GPU; ignored on " + options.device + "."
        if note not in notes:
            notes.append(note)
    if options.fuse_qkv and not hasattr(module, "fuse_qkv_projections"):
        pass
    elif options.fuse_qkv:
        module.fuse_qkv_projections()
    return module
