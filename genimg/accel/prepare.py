"""Applying speed options to one module, in order. Each option is a no-op where the hardware cannot use it, and
says so.

Measured on a 2-core AMD EPYC (Zen 4, AVX-512 BF16), the 9M-parameter UNet at 16x16 latents, batch 2, bf16:
torch.compile with inductor *freezing* (weights folded into the graph, oneDNN weight prepacking) roughly halves the
forward time; plain torch.compile without freezing gains little. channels_last and fused QKV did not help this
small UNet in eager mode on CPU; they are applied when asked, and the benchmark shows what they do.
"""
from __future__ import annotations

import torch

from genimg.accel.cuda_graphs import CudaGraphed
from genimg.accel.fuse import fuse_qkv
from genimg.accel.inductor import compile_module
from genimg.accel.notes import add_note
from genimg.options import SpeedOptions


def prepare_module(module: torch.nn.Module, options: SpeedOptions, notes: list[str], name: str = "model",
                   calibration=None, calibration_id: str = "") -> torch.nn.Module:
    """Fused QKV, channels_last, then the OpenVINO engine, or torchao quantisation and torch.compile or CUDA graphs,
    as asked; ``notes`` says what was skipped. ``calibration``: a function returning real ``(args, kwargs)`` calls of
    ``module``, for static int8 (``calibration_id`` names them in the OpenVINO disk cache's key)."""
    if options.precision == "bf16" and options.device == "cpu" and not _cpu_has_bf16():
        add_note(notes, "bf16: this CPU has no native bf16 instructions (AVX512-BF16/AMX), so bf16 runs emulated and "
                        "may be slower than fp32.")
    if options.fuse_qkv:
        fuse_qkv(module, notes, name)
    on_cuda = options.device.startswith("cuda")
    # compile=True on CUDA includes channels_last: inductor's convolution templates want NHWC (diffusers' guide).
    compiled_on_cuda = options.compile and on_cuda and options.engine == "torch"
    if options.channels_last or compiled_on_cuda:
        module = module.to(memory_format=torch.channels_last)
        if not options.channels_last:
            add_note(notes, "channels_last: part of compile=True on CUDA.")
    if options.cuda_graphs and not on_cuda:
        add_note(notes, f"CUDA graphs need a CUDA GPU; ignored on {options.device}.")
    if options.engine == "openvino":
        if options.device == "cpu":
            return _openvino(module, options, notes, name, calibration, calibration_id)
        add_note(notes, f"engine openvino: genimg runs OpenVINO on the CPU only; the torch engine runs on "
                        f"{options.device}.")
    if options.quantize:
        from genimg.accel.quantize import quantize_torch

        module = quantize_torch(module, options, notes, name)
    if options.compile:
        return compile_module(module, options, notes)
    if options.cuda_graphs and on_cuda:
        add_note(notes, "CUDA graphs: each input shape is captured on its first call (warm-up), then replayed.")
        return CudaGraphed(module)
    return module


def _openvino(module, options: SpeedOptions, notes: list[str], name: str, calibration, calibration_id: str):
    from genimg.accel.openvino import OpenVINOModule

    if options.compile:
        add_note(notes, "compile: the OpenVINO engine compiles the model itself; torch.compile is not used.")
    add_note(notes, "engine openvino: the first call reads the converted model from the disk cache "
                    "(or converts it) and compiles it; that time is warm-up, reported apart from latency.")
    return OpenVINOModule(module, options.precision, options.quantize, calibration, calibration_id, name, notes)


def prepare_text_embedder(embedder: torch.nn.Module, options: SpeedOptions, notes: list[str],
                          name: str = "text encoder") -> torch.nn.Module:
    """The text encoder's embedder (genimg.text.SentenceEmbedder, or its SentencePooler: the same weights) on
    ``options.text_engine_resolved``: unchanged for
    torch; for "openvino" / "openvino-int8" on the CPU, an OpenVINOModule (converted once, cached on disk), int8 with
    NNCF weight compression. Weight-only: static int8 (activations too, calibrated on the emoji captions) measured
    both slower and further from fp32 (pooled cosine down to 0.92) on the 2-core AMD EPYC; int8 weights keep every
    caption's sentence embedding within cosine 0.998 of fp32 (tests/test_text.py checks a bound)."""
    engine = options.text_engine_resolved
    if engine == "torch":
        return embedder
    if options.device != "cpu":
        add_note(notes, f"text engine {engine}: genimg runs OpenVINO on the CPU only; the text encoder runs on torch.")
        return embedder
    from genimg.accel.openvino import OpenVINOModule

    quantize = "int8" if engine == "openvino-int8" else None
    return OpenVINOModule(embedder, options.precision, quantize, name=name, notes=notes)


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
