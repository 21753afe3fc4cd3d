"""Per-stage timing that synchronises the device before reading the clock."""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


class StageTimer:
    """Accumulates milliseconds per named stage; ``total`` covers the whole generation."""

    def __init__(self, device: str):
        self.device = device
        self.timings_ms: dict[str, float] = {}
        synchronize(device)
        self._start = time.perf_counter()

    @contextmanager
    def stage(self, name: str):
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.timings_ms[name] = self.timings_ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0

    def finish(self) -> dict[str, float]:
        synchronize(self.device)
        self.timings_ms["total"] = (time.perf_counter() - self._start) * 1000.0
        return dict(self.timings_ms)


def reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_memory_bytes(device: str) -> int | None:
    """Peak allocated device memory since the last reset; None where torch cannot tell (CPU)."""
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    if device == "mps":
        return int(torch.mps.driver_allocated_memory())
    return None


@dataclass
class Generation:
    """What every backend returns: the images and where the time went."""

    images: list  # PIL.Image.Image
    timings: dict[str, float]
    peak_memory: int | None = None
    info: dict = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        return self.timings["total"]

    @property
    def per_image_ms(self) -> float:
        return self.timings["total"] / max(1, len(self.images))


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` 0.9 = p90; no interpolation: every reported latency is one that
    happened); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]
