"""Host memory: what this process holds, what the machine has free, and what a model folder needs to load.

The generator cache (``genimg.registry``) is bounded by the memory its generators hold, not only by their count, and
a model= pipeline too large for the free memory is refused with a message before it is loaded, instead of the process
being killed by the kernel half-way through (a real-size Stable Diffusion holds 4-6 GB in fp32, and OpenVINO's
conversion about twice that at its peak).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

# Bytes per parameter as loaded, by precision; how much more than the loaded weights a load holds at its peak.
BYTES_PER_PARAMETER = {"fp32": 4, "bf16": 2, "fp16": 2}
PEAK_FACTOR = {"torch": 1.25, "openvino": 2.5}  # the torch module and its converted copy, while converting
_SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                      "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def _psutil():
    try:
        import psutil
    except ImportError:  # not a dependency of genimg itself; /proc serves on Linux
        return None
    return psutil


def resident_bytes() -> int | None:
    """This process's resident memory, or None where it cannot be read."""
    psutil = _psutil()
    if psutil is not None:
        return psutil.Process().memory_info().rss
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _meminfo(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def available_bytes() -> int | None:
    """Memory the machine can give without swapping (MemAvailable), or None where it cannot be read."""
    psutil = _psutil()
    return psutil.virtual_memory().available if psutil is not None else _meminfo("MemAvailable")


def total_bytes() -> int | None:
    psutil = _psutil()
    return psutil.virtual_memory().total if psutil is not None else _meminfo("MemTotal")


def safetensors_parameters(path: Path) -> tuple[int, int]:
    """(parameters, bytes on disk) of one safetensors file, from its header alone (no tensor is read)."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    parameters = stored = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for size in entry["shape"]:
            count *= size
        parameters += count
        stored += count * _SAFETENSORS_BYTES.get(entry["dtype"], 4)
    return parameters, stored


def folder_parameters(folder: Path) -> int | None:
    """Parameters in a local model folder's safetensors files (None: not a local folder, or no safetensors)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    files = [path for path in folder.rglob("*.safetensors") if path.is_file()]
    if not files:
        return None
    return sum(safetensors_parameters(path)[0] for path in files)


def load_estimate_bytes(parameters: int, precision: str, engine: str = "torch") -> int:
    """What loading ``parameters`` at ``precision`` on ``engine`` holds at its peak, roughly."""
    return int(parameters * BYTES_PER_PARAMETER.get(precision, 4) * PEAK_FACTOR.get(engine, PEAK_FACTOR["torch"]))


def gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"
