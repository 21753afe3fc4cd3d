"""When a speed option with a first-call cost (torch.compile, CUDA graphs) pays for itself: the first call's extra
cost over a steady call, divided by what each image saves against the same configuration without the option.
Measured on the machine that serves, so the answer is about this machine."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class BreakEven:
    first_call_ms: float  # the first call with the option on (compile / capture included)
    steady_ms: float  # the same call once compiled
    plain_ms: float  # the same call without the option (after its own warm-up)
    batch_size: int = 1

    @property
    def first_call_extra_ms(self) -> float:
        return max(0.0, self.first_call_ms - self.steady_ms)

    @property
    def saving_ms_per_image(self) -> float:
        return (self.plain_ms - self.steady_ms) / self.batch_size

    @property
    def images_to_break_even(self) -> int | None:
        """Images after which the option has paid for its first call; None when it saves nothing here."""
        if self.saving_ms_per_image <= 0:
            return None
        return max(1, math.ceil(self.first_call_extra_ms / self.saving_ms_per_image))

    def markdown(self, option: str = "torch.compile") -> str:
        head = (f"**Break-even ({option})**: the first call took {self.first_call_ms / 1000:,.1f} s, "
                f"{self.first_call_extra_ms / 1000:,.1f} s more than a steady one")
        if self.images_to_break_even is None:
            return (f"{head}; without it this call takes {self.plain_ms:,.1f} ms against {self.steady_ms:,.1f} ms "
                    "with it, so on this machine it never pays for itself.")
        return (f"{head}; it saves {self.saving_ms_per_image:,.1f} ms per image ({self.plain_ms:,.1f} -> "
                f"{self.steady_ms:,.1f} ms per call), so it pays for itself after "
                f"{self.images_to_break_even:,} images on this machine.")


class BreakEvenCache:
    """Per configuration key: the first call's time, measured when it happens, and the time without the option,
    measured once (two calls: a warm-up, then the timed one)."""

    def __init__(self):
        self.first_call_ms: dict = {}
        self.plain_ms: dict = {}

    def first_call(self, key, call) -> float | None:
        """Runs ``call`` and records its wall time if ``key`` has no first call yet; returns it, or None."""
        if key in self.first_call_ms:
            return None
        start = time.perf_counter()
        call()
        self.first_call_ms[key] = (time.perf_counter() - start) * 1000
        return self.first_call_ms[key]

    def plain(self, key, call) -> float:
        """The steady time of ``call`` (a generation returning timings) without the option, measured once."""
        if key not in self.plain_ms:
            call()
            self.plain_ms[key] = call().timings["total"]
        return self.plain_ms[key]

    def result(self, key, steady_ms: float, plain_call, batch_size: int) -> BreakEven | None:
        if key not in self.first_call_ms:
            return None
        return BreakEven(self.first_call_ms[key], steady_ms, self.plain(key, plain_call), batch_size)
