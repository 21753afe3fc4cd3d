"""What the machine is: the CPU's name for reports, and whether it computes bf16 natively (a default that depends on
it: on a CPU with AVX-512 BF16 or AMX, bf16 is the faster precision; without them it is emulated and slower than
fp32)."""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none: not Linux)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    """The CPU's model name and core count, e.g. "AMD EPYC 9R14 (2 cores)"."""
    model = _cpuinfo().get("model name") or platform.processor() or platform.machine()
    return f"{model} ({os.cpu_count()} cores)"


def cpu_has_native_bf16() -> bool:
    """Whether the CPU has bf16 instructions (AVX-512 BF16 or AMX), as /proc/cpuinfo lists them."""
    flags = _cpuinfo().get("flags", "").split()
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)
