"""torch.compile (inductor) for inference: freezing and the C++ wrapper on CPU; max-autotune, diffusers' inductor
settings and CUDA graphs on CUDA."""
from __future__ import annotations

import shutil

import torch
from torch.utils import _pytree as pytree

from genimg.accel.notes import add_note
from genimg.accel.wrapper import ModuleWrapper
from genimg.options import SpeedOptions


# compile=True on CUDA, as diffusers' "accelerate inference" guide tunes inductor for SD UNets and VAEs (its largest
# single gain: max-autotune with channels_last, 2.36x SD-1.5 on an A100): 1x1 convolutions as matmuls (tensor-core
# templates), coordinate-descent tuning of each kernel's launch config, and no epilogue fusion into the autotuned
# templates (it blocks the faster ones). CUDA only: the CPU compile keeps the settings Frozen documents.
CUDA_INDUCTOR_SETTINGS = {"conv_1x1_as_mm": True, "coordinate_descent_tuning": True, "epilogue_fusion": False,
                          "coordinate_descent_check_all_directions": True}


def compile_mode(options: SpeedOptions) -> str | None:
    """torch.compile's mode: on CUDA max-autotune, CUDA graphs included (what wins there); with
    ``max_autotune=False`` inductor's default choices, with CUDA graphs only when ``cuda_graphs`` asks. None
    (inductor's defaults) on the CPU."""
    if not options.device.startswith("cuda"):
        return None
    if options.max_autotune is False:
        return "reduce-overhead" if options.cuda_graphs else None
    return "max-autotune"


def compile_module(module: torch.nn.Module, options: SpeedOptions, notes: list[str]) -> torch.nn.Module:
    """torch.compile for inference: inductor freezing on every device; on CPU the C++ wrapper, on CUDA max-autotune
    and diffusers' inductor settings, CUDA graphs via the compile mode when asked."""
    if options.device == "cpu" and not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        add_note(notes, "torch.compile needs a C++ compiler on CPU and none was found; ignored.")
        return module
    if options.device == "mps":
        add_note(notes, "torch.compile is not used on MPS (inductor support is experimental there); ignored.")
        return module
    mode = compile_mode(options)
    compiled = torch.compile(module, mode=mode, dynamic=False)
    add_note(notes, "torch.compile: the first generation per batch size compiles; that time is warm-up, "
                    "reported separately, never in latency.")
    cuda = options.device.startswith("cuda")
    graphs = mode in ("max-autotune", "reduce-overhead")  # both capture CUDA graphs
    if graphs:
        add_note(notes, f"CUDA graphs: applied by torch.compile mode='{mode}'.")
    if mode and mode.startswith("max-autotune"):
        add_note(notes, "max-autotune: inductor benchmarks its kernel choices on the first compile (minutes); a "
                        "loaded compile cache (genimg.accel.compile_cache) skips that.")
    return Frozen(compiled, clone_outputs=graphs, cpp_wrapper=options.device == "cpu",
                  extra_settings=CUDA_INDUCTOR_SETTINGS if cuda else None)


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

    def __init__(self, compiled: torch.nn.Module, clone_outputs: bool = False, cpp_wrapper: bool = False,
                 extra_settings: dict | None = None):
        super().__init__()
        self.compiled, self.clone_outputs = compiled, clone_outputs
        self.inductor_settings = {"freezing": True, **({"cpp_wrapper": True} if cpp_wrapper else {}),
                                  **(extra_settings or {})}

    def forward(self, *args, **kwargs):
        from torch._inductor import config

        with config.patch(**self.inductor_settings):
            outputs = self.compiled(*args, **kwargs)
        if self.clone_outputs:  # CUDA-graph outputs are overwritten by the next replay; schedulers keep some
            outputs = pytree.tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, outputs)
        return outputs
