"""What every backend shares: request validation, seeding, the text stage, timing and conversion to PIL."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genimg.options import Request, SpeedOptions
from genimg.text import TextEmbeddings, TextEncoder
from genimg.timing import Generation, StageTimer, peak_memory_bytes, reset_peak_memory

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "models"


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> PIL images."""
    array = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(image)) for image in array]


def seeded_noise(shape: tuple, seed: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """Noise drawn on the CPU, so a seed gives the same images on every device."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device=device, dtype=dtype)


class BaseGenerator:
    """Subclasses set ``name``, ``default_steps`` and implement ``_generate(request, text, timer) -> tensor``."""

    name = "base"
    default_steps: int | None = None
    default_guidance: float | None = None

    def __init__(self, options: SpeedOptions):
        self.options = options.validated()
        self.device, self.dtype = self.options.device, self.options.torch_dtype
        # Schedulers and compiled graphs keep per-run state: one generation at a time per generator.
        self.lock = threading.Lock()
        self.notes: list[str] = []

    def _text_encoder(self) -> TextEncoder:
        return TextEncoder(device=self.device, dtype=self.dtype)

    def encode(self, prompt: str, batch_size: int, timer: StageTimer) -> TextEmbeddings:
        with timer.stage("text_encode"):
            text = self.text.encode([prompt])
        return TextEmbeddings(text.tokens.expand(batch_size, -1, -1), text.pooled.expand(batch_size, -1),
                              text.truncated)

    def generate(self, prompt: str, steps: int | None = None, batch_size: int = 1, seed: int = 0,
                 guidance: float | None = None, on_step=None) -> Generation:
        request = Request(prompt, steps, batch_size, seed, guidance).validated()
        request = Request(request.prompt, request.steps or self.default_steps, request.batch_size, request.seed,
                          self.default_guidance if request.guidance is None else request.guidance)
        with self.lock, torch.inference_mode():
            reset_peak_memory(self.device)
            timer = StageTimer(self.device)
            text = self.encode(request.prompt, request.batch_size, timer)
            images = self._generate(request, text, timer, on_step)
            with timer.stage("to_pil"):
                pil_images = to_pil(images)
            timings = timer.finish()
        info = {"backend": self.name, "steps": request.steps, "guidance": request.guidance,
                "prompt": request.prompt, "seed": request.seed, "precision": self.options.precision,
                "device": self.device, "notes": list(self.notes)}
        if text.truncated[0]:
            info["notes"].append("The prompt was longer than the text encoder's context and was truncated.")
        return Generation(pil_images, timings, peak_memory_bytes(self.device), info)

    def _generate(self, request: Request, text: TextEmbeddings, timer: StageTimer, on_step) -> torch.Tensor:
        raise NotImplementedError
