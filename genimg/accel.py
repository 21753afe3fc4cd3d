"""Applying speed options to modules. Each option is a no-op where the hardware cannot use it, and says so.

Measured on a 2-core AMD EPYC (Zen 4, AVX-512 BF16), the 9M-parameter UNet at 16x16 latents, batch 2, bf16:
torch.compile with inductor *freezing* (weights folded into the graph, oneDNN weight prepacking) roughly halves the
forward time; plain torch.compile without freezing gains little. channels_last and fused QKV did not help this
small UNet in eager mode on CPU; they are applied when asked, and the benchmark shows what they do.
"""
from __future__ import annotations

import shutil

import torch
from torch.utils import _pytree as pytree

from genimg.options import SpeedOptions


def add_note(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


def note_inapplicable(options: SpeedOptions, notes: list[str], backend: str) -> None:
    """For backends without a sampler or a latent decoder: say that those options do nothing here."""
    if options.scheduler:
        add_note(notes, f"scheduler: the {backend} backend draws in one pass and has no sampler; ignored.")
    if options.tiny_decoder:
        add_note(notes, f"tiny decoder: only the latent backends decode latents; ignored by the {backend} backend.")
    if options.guidance_cutoff is not None:
        add_note(notes, f"guidance cutoff: the {backend} backend has no guidance pass to cut; ignored.")


def prepare_module(module: torch.nn.Module, options: SpeedOptions, notes: list[str],
                   name: str = "model") -> torch.nn.Module:
    """Fused QKV, channels_last, then torch.compile or CUDA graphs, as asked; ``notes`` says what was skipped."""
    if options.precision == "bf16" and options.device == "cpu" and not _cpu_has_bf16():
        add_note(notes, "bf16: this CPU has no native bf16 instructions (AVX512-BF16/AMX), so bf16 runs emulated and "
                        "may be slower than fp32.")
    if options.fuse_qkv:
        fuse_qkv(module, notes, name)
    if options.channels_last:
        module = module.to(memory_format=torch.channels_last)
    on_cuda = options.device.startswith("cuda")
    if options.cuda_graphs and not on_cuda:
        add_note(notes, f"CUDA graphs need a CUDA GPU; ignored on {options.device}.")
    if options.compile:
        return compile_module(module, options, notes)
    if options.cuda_graphs and on_cuda:
        add_note(notes, "CUDA graphs: each input shape is captured on its first call (warm-up), then replayed.")
        return CudaGraphed(module)
    return module


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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


class Frozen(torch.nn.Module):
    """Calls a compiled module with inductor *freezing* on: weights become constants, oneDNN prepacks them.

    Inductor reads the setting when the first call compiles, and ``torch.compile(options={"freezing": True})`` does
    not reach that point (measured: convolutions stayed unpacked), so it is patched around each call instead of being
    set for the whole process. Freezing applies to inference only (no autograd), which is how genimg runs.

    ``cpp_wrapper`` (CPU): the compiled graph calls its kernels from C++ instead of a Python wrapper. On the 2-core
    Xeon, interleaved in one process (medians of 22 rounds): embedded UNet at batch 2 15.0 -> 13.5 ms, KL decoder
    10.8 -> 10.4 ms; compiling takes longer (UNet 27 -> 44 s). ``max_autotune`` gained nothing there.
    """

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

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "compiled":
                raise
            return getattr(self.compiled, name)


class CudaGraphed(torch.nn.Module):
    """Replays a captured CUDA graph per input signature; tensors are copied into static buffers first.

    Outputs are cloned, so a caller may keep them across calls (schedulers keep past model outputs).
    """

    def __init__(self, module: torch.nn.Module, warmup_calls: int = 2):
        super().__init__()
        self.module, self.warmup_calls = module, warmup_calls
        self._graphs: dict = {}

    @staticmethod
    def _key(flat, spec):
        return spec, tuple((tuple(x.shape), x.dtype, x.device) if isinstance(x, torch.Tensor) else x for x in flat)

    def forward(self, *args, **kwargs):
        flat, spec = pytree.tree_flatten((args, kwargs))
        key = self._key(flat, spec)
        if key not in self._graphs:
            self._graphs[key] = self._capture(flat, spec)
        static_inputs, graph, static_output = self._graphs[key]
        for buffer, value in zip(static_inputs, flat):
            if isinstance(value, torch.Tensor):
                buffer.copy_(value)
        graph.replay()
        return pytree.tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, static_output)

    def _capture(self, flat, spec):
        static_inputs = [x.clone() if isinstance(x, torch.Tensor) else x for x in flat]
        args, kwargs = pytree.tree_unflatten(static_inputs, spec)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup_calls):  # lazy init and autotuning happen outside the capture
                self.module(*args, **kwargs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = self.module(*args, **kwargs)
        return static_inputs, graph, static_output

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)
