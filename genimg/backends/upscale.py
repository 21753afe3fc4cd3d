"""The 2x upscaler stage every embedded backend can end with (``upscale=2``), and ``genimg.upscale`` for any image.

The shipped upscaler (``assets/models/upscaler``, ``genimg.models.upscaler``) turns the generators' 64x64 drawings
into 128x128 images. It runs through the generator's own speed options (device, precision, compile, the OpenVINO
engine; ``accel.prepare_module``), channels_last always on the torch engine; quantisation is not applied to it (it
is a few convs: int8 would save little and blur what it is there to sharpen).
"""
from __future__ import annotations

import dataclasses
import threading
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from genimg.accel import add_note, prepare_module
from genimg.assets import ASSETS, optional_model
from genimg.errors import InvalidRequest
from genimg.images import read_image
from genimg.models.upscaler import Upscaler
from genimg.options import UPSCALE_FACTORS, SpeedOptions

MAX_INPUT_SIDE = 512  # genimg.upscale: a larger image is refused (the upscaler is made for 64 px drawings)
TRAIN_COMMAND = "python -m genimg train upscaler"


class ImageUpscaler:
    """(B, 3, H, W) in [-1, 1] -> (B, 3, 2H, 2W) in [-1, 1] with the shipped upscaler, prepared for ``options``."""

    def __init__(self, options: SpeedOptions, notes: list[str], folder=None):
        folder = folder or optional_model("upscaler", TRAIN_COMMAND, ASSETS)
        model = Upscaler.from_pretrained(folder, torch_dtype=options.torch_dtype).to(options.device).eval()
        self.factor = model.config.factor
        # channels_last always on the torch engine: it took the upscaler from 6.0 to 3.7 ms an image at fp32 on a
        # 2-core Zen 4 (batch 8); OpenVINO picks its own layout.
        openvino = options.engine == "openvino" and options.device == "cpu"
        self.device, self.dtype, self.channels_last = options.device, options.torch_dtype, not openvino
        self.lock = threading.Lock()  # for callers outside a generator's own lock (genimg.upscale)
        if options.quantize:
            add_note(notes, f"quantize {options.quantize}: the upscaler runs unquantised at {options.precision}.")
        self.model = prepare_module(model, dataclasses.replace(options, quantize=None, fuse_qkv=False,
                                                               channels_last=self.channels_last), notes,
                                    name="upscaler")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.dtype)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images).clamp(-1, 1)


@lru_cache(maxsize=4)
def shared_upscaler(options: SpeedOptions) -> ImageUpscaler:
    """One loaded upscaler per configuration, for ``genimg.upscale`` (the caller holds threads.LOAD_LOCK)."""
    return ImageUpscaler(options, [])


def check_factor(factor) -> int:
    if isinstance(factor, bool) or factor not in UPSCALE_FACTORS:
        raise InvalidRequest(f"factor must be 1 (no upscaling) or 2 (the 2x upscaler), got {factor!r}.")
    return int(factor)


def readable_image(image) -> Image.Image:
    """``image`` (a PIL image, path or bytes) as RGB on white, its size kept; refused above MAX_INPUT_SIDE."""
    picture = read_image(image, None)
    if max(picture.size) > MAX_INPUT_SIDE:
        raise InvalidRequest(f"The image is {picture.width}x{picture.height}; genimg.upscale takes images of at most "
                             f"{MAX_INPUT_SIDE} px a side (it is made for the models' 64x64 drawings).")
    return picture


def upscale_picture(upscaler: ImageUpscaler, picture: Image.Image) -> Image.Image:
    """One RGB image through ``upscaler``: uint8 -> [-1, 1] -> upscaled -> uint8."""
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1  # (1, 3, H, W)
    with upscaler.lock, torch.inference_mode():
        output = upscaler(pixels.to(upscaler.device))
    array = ((output[0].float() + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array))
