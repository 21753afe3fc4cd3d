"""torch.compile (inductor) for inference: freezing and the C++ wrapper on CPU, reduce-overhead on CUDA."""
from __future__ import annotations

import shutil

import torch
from torch.utils import _pytree as pytree

from genimg.accel.notes import add_note
from genimg.accel.wrapper import ModuleWrapper
from genimg.options import SpeedOptions


def compile_module(module: torch.nn.Module, options: SpeedOptions, notes: list[str]) -> torch.nn.Module:
    """torch.compile for inference: inductor freezing on CPU, CUDA graphs via 'reduce-overhead' when asked."""
    if options.device == "cpu" and not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        add_note(notes, "torch.compile needs a C++ compiler on CPU and none was found; ignored.")
        return module
    if options.device == "mps":
        add_note(notes, "torch.compile is not used on MPS (inductor support is experimental there); ignored.")
        return module
    mode = "reduce-overhead" if options.cuda_graphs and options.device.startswith("cuda") else None
    compiled = torch.compile(module, mode=mode, dynamic=False)
    add_note(notes, "torch.compile: the first generation per batch size compiles; that time is warm-up, "
                    "reported separately, never in latency.")
    if mode:
        add_note(notes, "CUDA graphs: applied by torch.compile mode='reduce-overhead'.")
    return Frozen(compiled, clone_outputs=mode is not None, cpp_wrapper=options.device == "cpu")


class Frozen(ModuleWrapper):
    """Calls a compiled module with inductor *freezing* on: weights become constants, oneDNN prepacks them.

    Inductor reads the setting when the first call compiles, and ``torch.compile(options={"freezing": True})`` does
    not reach that point (measured: convolutions stayed unpacked), so it is patched around each call instead of being
    set for the whole process. Freezing applies to inference only (no autograd), which is how genimg runs.

    ``cpp_wrapper`` (CPU): the compiled graph calls its kernels from C++ instead of a Python wrapper. On the 2-core
    Xeon, interleaved in one process (medians of 22 rounds): embedded UNet at batch 2 15.0 -> 13.5 ms, KL decoder
    10.8 -> 10.4 ms; compiling takes longer (UNet 27 -> 44 s). ``max_autotune`` gained nothing there.
    """

    wrapped = "compiled"

    def __init__(self, compiled: torch.nn.Module, clone_outputs: bool = False, cpp_wrapper: bool = False):
        super().__init__()
        self.compiled, self.clone_outputs = compiled, clone_outputs
        self.inductor_settings = {"freezing": True, **({"cpp_wrapper": True} if cpp_wrapper else {})}

    def forward(self, *args, **kwargs):
        from torch._inductor import config

        with config.patch(**self.inductor_settings):
            outputs = self.compiled(*args, **kwargs)
        if self.clone_outputs:  # CUDA-graph outputs are overwritten by the next replay; schedulers keep some
            outputs = pytree.tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, outputs)
        return outputs
