"""Quantisation (``quantize="int8"`` / ``"fp8"``) through well-kept libraries, never hand-written kernels.

- OpenVINO engine, CPU: NNCF post-training static int8 (``nncf.quantize``), calibrated on real inputs the backend
  records from its own sampling loop (``record_calls``); without calibration data, int8 weight compression
  (``nncf.compress_weights``).
- torch engine: torchao. CPU: int8 dynamic activations + int8 weights (``Int8DynamicActivationInt8WeightConfig``),
  which pays under ``torch.compile`` (inductor fuses the int8 matmuls; measured, see ``TORCH_CPU_CONFIG``). CUDA:
  int8 weight-only, or fp8 dynamic activations + fp8 weights where the card has fp8 units (compute capability >= 8.9:
  Ada, Hopper and later).

torchao quantises ``nn.Linear`` layers; convolutions keep the module's precision (the notes say so).
"""
from __future__ import annotations

import torch

from genimg.accel.notes import add_note
from genimg.options import SpeedOptions

def torchao_config(options: SpeedOptions):
    """Which torchao recipe ``quantize`` means on this device (CPU int8, CUDA int8 weight-only, CUDA fp8)."""
    from torchao.quantization import (Float8DynamicActivationFloat8WeightConfig, Int8DynamicActivationInt8WeightConfig,
                                      Int8WeightOnlyConfig)

    if options.quantize == "fp8":
        return Float8DynamicActivationFloat8WeightConfig()
    if options.device.startswith("cuda"):
        return Int8WeightOnlyConfig()
    return Int8DynamicActivationInt8WeightConfig()


def quantize_torch(module: torch.nn.Module, options: SpeedOptions, notes: list[str], name: str) -> torch.nn.Module:
    """torchao ``quantize_`` in place on the module's Linear layers; a note when there is nothing to quantise."""
    from torchao.quantization import quantize_

    linears = sum(isinstance(m, torch.nn.Linear) for m in module.modules())
    if not linears:
        add_note(notes, f"quantize: the {name} has no Linear layers for torchao to quantise; it runs unquantised.")
        return module
    config = torchao_config(options)
    quantize_(module, config)
    add_note(notes, f"quantize {options.quantize}: torchao {type(config).__name__} on the {name}'s {linears} Linear "
                    "layers (convolutions keep their precision).")
    if not options.compile:
        add_note(notes, "quantize: torchao's int8 kernels are fast under torch.compile; without compile=True they "
                        "run as slow eager fallbacks.")
    return module


def record_calls(module: torch.nn.Module, run) -> list[tuple[tuple, dict]]:
    """Runs ``run()`` and returns every call ``module`` received as ``(args, kwargs)``: real calibration inputs."""
    calls = []

    def hook(_, args, kwargs):
        calls.append((tuple(_detached(a) for a in args), {k: _detached(v) for k, v in kwargs.items()}))

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return calls


def _detached(value):
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


def openvino_int8(model, samples, notes: list[str], name: str):
    """NNCF post-training int8 of an ``openvino.Model``: static, on ``samples`` (lists of numpy inputs) when given,
    otherwise int8 weight compression alone."""
    import nncf

    if not samples:
        add_note(notes, f"quantize int8: no calibration inputs for the {name}; NNCF compressed its weights to int8 "
                        "(activations stay in float).")
        return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                              model_type=nncf.ModelType.TRANSFORMER)
    add_note(notes, f"quantize int8: NNCF static int8 of the {name}, calibrated on {len(samples)} real calls.")
    return quantized
