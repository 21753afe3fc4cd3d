"""Limits that protect the device and the host: pixels and time per request, memory faults, bad outputs, and which
folders a model may be read from. Each refusal says what to change."""
from __future__ import annotations

import os
import re
from time import monotonic
from dataclasses import dataclass
from pathlib import Path

import torch

from genimg.errors import GenerationTimeout, InvalidRequest, NonFiniteOutput, OutOfMemory, RequestTooLarge

# Batch x height x width per request: four 512x512 images of an external pipeline (SD 1.5) or one 1024x1024 one;
# the embedded 64x64 models hit MAX_BATCH_SIZE (16) long before this.
MAX_PIXELS_PER_REQUEST = 4 * 512 * 512
# Hub ids as huggingface_hub accepts them: "owner/name", letters, digits, '-', '_' and '.'.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


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


def allowed_model_folders(assets: Path) -> list[Path]:
    """The project's assets folder, plus the folders named in GENIMG_MODEL_DIRS (os.pathsep-separated)."""
    extra = os.environ.get("GENIMG_MODEL_DIRS", "").split(os.pathsep)
    return [Path(assets), *(Path(folder).expanduser() for folder in extra if folder.strip())]


def check_model_source(model: str, allowed_folders: list[Path]) -> str:
    """A hub id ("owner/name") passes; a local path must lie inside an allowed folder. Nothing is read here: the
    path is only resolved (symlinks and '..' included) and compared, so '/etc' or '../..' never reach a loader."""
    model = model.strip()
    candidate = Path(model).expanduser()
    looks_like_hub_id = HUB_ID.fullmatch(model) is not None and ".." not in model
    if looks_like_hub_id and not candidate.exists():
        return model
    resolved = candidate.resolve()
    if not any(resolved.is_relative_to(Path(folder).resolve()) for folder in allowed_folders):
        raise InvalidRequest(f"{model!r} is not a hub id ('owner/name') and not inside a model folder this app may "
                             f"read ({', '.join(str(folder) for folder in allowed_folders)}); put the pipeline "
                             "folder there, or add its parent folder to GENIMG_MODEL_DIRS.")
    return str(resolved)


@dataclass(frozen=True)
class ServingLimits:
    """What a server built on genimg allows; ``from_env`` reads the GENIMG_* variables named below."""

    request_timeout_s: float = 300.0  # GENIMG_REQUEST_TIMEOUT_S: the most one request may take, queueing excluded
    queue_size: int = 32  # GENIMG_QUEUE_SIZE: requests waiting beyond this are told the server is busy
    max_batch_size: int = 8  # GENIMG_MAX_BATCH: one-image requests batched together (1 = no dynamic batching)

    @classmethod
    def from_env(cls, environ=os.environ) -> "ServingLimits":
        names = {"request_timeout_s": ("GENIMG_REQUEST_TIMEOUT_S", float), "queue_size": ("GENIMG_QUEUE_SIZE", int),
                 "max_batch_size": ("GENIMG_MAX_BATCH", int)}
        values = {}
        for field_name, (variable, kind) in names.items():
            if environ.get(variable, "").strip():
                try:
                    values[field_name] = kind(environ[variable])
                except ValueError:
                    raise InvalidRequest(f"{variable}={environ[variable]!r} is not a {kind.__name__}.") from None
                if values[field_name] <= 0:
                    raise InvalidRequest(f"{variable} must be positive, got {environ[variable]!r}.")
        return cls(**values)
