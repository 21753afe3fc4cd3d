"""Guards every generation passes: pixels and time per request, running out of device memory, NaN/inf outputs.
Each refusal raises a specific ``genimg.errors`` exception that says what to change."""
from __future__ import annotations

from time import monotonic

import torch

from genimg.errors import GenerationTimeout, InvalidRequest, NonFiniteOutput, OutOfMemory, RequestTooLarge

# Batch x height x width per request: four 512x512 images of an external pipeline (SD 1.5) or one 1024x1024 one;
# the embedded 64x64 models hit MAX_BATCH_SIZE (16) long before this.
MAX_PIXELS_PER_REQUEST = 4 * 512 * 512


def check_pixel_budget(batch_size: int, image_size: tuple[int, int], limit: int = MAX_PIXELS_PER_REQUEST) -> None:
    height, width = image_size
    if batch_size * height * width > limit:
        fits = max(1, limit // (height * width))
        megapixels = batch_size * height * width / 1e6
        raise RequestTooLarge(
            f"A batch of {batch_size} images of {width}x{height} is {megapixels:.2f} megapixels; one request may "
            f"hold {limit / 1e6:.2f}: ask for at most {fits} image{'s' if fits > 1 else ''} at a time.")


class Deadline:
    """The time one request may take, from its arrival: waiting for the device counts, so does every step."""

    def __init__(self, timeout_s: float | None = None):
        if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                                      or not timeout_s > 0):
            raise InvalidRequest(f"timeout_s must be a positive number of seconds or None, got {timeout_s!r}.")
        self.timeout_s = timeout_s
        self.end = None if timeout_s is None else monotonic() + timeout_s

    def check(self, where: str = "before starting") -> None:
        if self.end is not None and monotonic() > self.end:
            raise GenerationTimeout(f"The generation ran past the limit of {self.timeout_s:g} s per request "
                                    f"({where}); ask for fewer steps or a smaller batch, or try again when the "
                                    "device is less busy.")

    def remaining_s(self) -> float | None:
        return None if self.end is None else max(0.001, self.end - monotonic())

    def wrap(self, on_step):
        """``on_step`` (or nothing) preceded by a deadline check: the denoising loops call it between steps."""
        if self.end is None:
            return on_step

        def checked_on_step(done: int, total: int) -> None:
            self.check(f"stopped after step {done} of {total}")
            if on_step is not None:
                on_step(done, total)

        return checked_on_step


def free_device_memory() -> None:
    """Return cached blocks to the driver, so the next, smaller request starts from a clean slate."""
    import gc

    gc.collect()
    torch.cuda.empty_cache()  # a no-op where CUDA was never initialised


def is_out_of_memory(error: BaseException) -> bool:
    # torch raises OutOfMemoryError on CUDA; the CPU allocator raises a plain RuntimeError.
    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def call_freeing_memory_on_oom(function, batch_size: int):
    """``function()``; running out of device memory becomes OutOfMemory, with the cache emptied first."""
    try:
        return function()
    except RuntimeError as error:  # torch.cuda.OutOfMemoryError is one
        if not is_out_of_memory(error):
            raise
    # Only here, out of the except block, are the failed call's frames (and the tensors they hold) released.
    free_device_memory()
    smaller = f"a batch smaller than {batch_size}" if batch_size > 1 else "fewer steps or a smaller model"
    raise OutOfMemory(f"The device ran out of memory for this request; ask for {smaller}, or use "
                      "precision='bf16' or the tiny decoder.")


def check_finite(images: torch.Tensor) -> None:
    """NaN or inf would come out as black or noise images; say so instead (usually a half-precision overflow)."""
    finite = torch.isfinite(images.flatten(1)).all(dim=1)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise NonFiniteOutput(f"The model produced NaN or infinite values in {bad} of {len(finite)} images "
                              "(a numerical overflow, most often in fp16); try precision='fp32' or 'bf16'.")
