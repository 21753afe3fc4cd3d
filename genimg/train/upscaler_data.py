"""The upscaler's training pairs: 64 px inputs made the way generators' outputs look, each with its 128 px glyph.

1. **Degraded downscales.** The glyph at 64 px (half the time as the dataset renders it, Lanczos from the font's
   bitmap; else the 128 px glyph downscaled by area, bilinear or bicubic, antialiased) is blurred, noised and
   colour-shifted at random: the errors the generators make. Blur and noise are on the input only (the upscaler
   learns to sharpen and denoise); a colour shift is applied to input and target alike, so the upscaler keeps the
   colours it is given instead of pulling them towards the font's palette.
2. **The generators' own drawings.** Each embedded generator (gan, vae, latent-lcm at 1 step: the Live tab's) draws
   ``DRAWINGS_PER_SOURCE`` training emoji (a different random draw per generator) at 64 px from their names; the
   drawings nearest their glyph (pixel L1 below the median per generator: the generator drew that emoji, in place)
   are paired with the 128 px glyph. Cached under the genimg cache.

Held out of both: every ``HELD_OUT_EVERY``-th emoji, which the evaluation scores (``held_out_indices``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from genimg.train.data import EmojiDataset, cache_dir

HELD_OUT_EVERY = 20
# (backend, steps) whose 64 px drawings become training inputs
GENERATOR_SOURCES = (("gan", None), ("vae", None), ("latent-lcm", 1))
DRAWINGS_PER_SOURCE = 400  # drawing goes through the whole text path: 0.1-1 s an image on 2 busy cores
MAX_BLUR_SIGMA = 1.0  # in 64 px pixels
BLUR_SHARE, NOISE_SHARE = 0.4, 0.3  # of the inputs: the rest stay clean (a sharp input must stay as sharp)
MAX_NOISE = 0.06  # standard deviation, in [-1, 1] units
MAX_COLOUR_SHIFT = 0.06  # per-channel gain and offset


def held_out_indices(count: int) -> np.ndarray:
    return np.arange(0, count, HELD_OUT_EVERY)


def training_indices(count: int) -> np.ndarray:
    return np.setdiff1d(np.arange(count), held_out_indices(count))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def downscale(images: torch.Tensor, mode: str = "area") -> torch.Tensor:
    """(B, 3, 2H, 2W) -> (B, 3, H, W); ``mode``: "area" (2x2 mean), "bilinear" or "bicubic" (antialiased)."""
    if mode == "area":
        return F.avg_pool2d(images, 2)
    return F.interpolate(images, scale_factor=0.5, mode=mode, antialias=True, align_corners=False).clamp(-1, 1)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A separable Gaussian blur with one sigma per image (B,); sigma 0 leaves the image as it is."""
    offsets = torch.arange(-3, 4, dtype=images.dtype)
    kernel = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None].clamp(min=1e-3) ** 2))  # (B, 7)
    kernel = kernel / kernel.sum(1, keepdim=True)
    batch, channels, height, width = images.shape
    x = F.pad(images.reshape(1, batch * channels, height, width), (3, 3, 3, 3), mode="replicate")
    weight = kernel.repeat_interleave(channels, 0)  # (B*C, 7)
    x = F.conv2d(x, weight[:, None, None, :], groups=batch * channels)
    x = F.conv2d(x, weight[:, None, :, None], groups=batch * channels)
    return x.reshape(batch, channels, height, width)


def degraded_pairs(targets: torch.Tensor, generator: torch.Generator,
                   small: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, 128, 128) glyphs -> (inputs (B, 3, 64, 64), targets (B, 3, 128, 128)), both in [-1, 1]. ``small``: the
    same glyphs as the dataset renders them at 64 px (Lanczos from the font's bitmap, what the generators learned to
    draw): half of the batches start from those, the rest from a downscale of the 128 px glyph."""
    batch = len(targets)
    gain = 1 + MAX_COLOUR_SHIFT * (2 * torch.rand(batch, 3, 1, 1, generator=generator) - 1)
    offset = MAX_COLOUR_SHIFT * (2 * torch.rand(batch, 3, 1, 1, generator=generator) - 1)
    shifted = torch.rand(batch, 1, 1, 1, generator=generator) < 0.5

    def shift(images: torch.Tensor) -> torch.Tensor:
        return torch.where(shifted, (images * gain + offset).clamp(-1, 1), images)

    modes = ("area", "bilinear", "bicubic")
    modes = modes if small is None else ("font",) * 3 + modes
    mode = modes[int(torch.randint(len(modes), (1,), generator=generator))]
    inputs = shift(small) if mode == "font" else downscale(shift(targets), mode)
    blurred = torch.rand(batch, generator=generator) < BLUR_SHARE
    sigma = MAX_BLUR_SIGMA * torch.rand(batch, generator=generator) * blurred
    inputs = gaussian_blur(inputs, sigma)
    noise = MAX_NOISE * torch.rand(batch, 1, 1, 1, generator=generator) * (
        torch.rand(batch, 1, 1, 1, generator=generator) < NOISE_SHARE)
    inputs = inputs + noise * torch.randn(inputs.shape, generator=generator)
    return inputs.clamp(-1, 1), shift(targets)


def generator_pairs(dataset: EmojiDataset, kind: str, refresh: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(drawings uint8 (M, 64, 64, 3), emoji index (M,)): the embedded generators' drawings of training emoji that
    lie nearest their glyph. Empty for the procedural stand-in (the generators draw emoji, not shapes)."""
    if kind != "emoji":
        return np.zeros((0, 64, 64, 3), np.uint8), np.zeros(0, np.int64)
    drawings, emoji = [], []
    rng = np.random.default_rng(0)
    for backend, steps in GENERATOR_SOURCES:
        train = np.sort(rng.choice(training_indices(len(dataset)), DRAWINGS_PER_SOURCE, replace=False))
        images = cached_drawings(backend, steps, dataset, train, refresh)
        distance = np.abs(images.astype(np.float32) - dataset.images[train].astype(np.float32)).mean(axis=(1, 2, 3))
        keep = distance <= np.median(distance)
        drawings.append(images[keep])
        emoji.append(train[keep])
    return np.concatenate(drawings), np.concatenate(emoji)


def cached_drawings(backend: str, steps: int | None, dataset: EmojiDataset, emoji: np.ndarray,
                    refresh: bool = False) -> np.ndarray:
    """``draw_all`` of these emoji's names, cached per generator under the genimg cache."""
    path = cache_dir() / f"upscaler-drawings-{backend}-{steps or 0}-{len(dataset)}-{len(emoji)}.npz"
    if path.exists() and not refresh:
        return np.load(path)["drawings"]
    images = draw_all(backend, steps, [dataset.names[i] for i in emoji])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, drawings=images)
    return images


def draw_all(backend: str, steps: int | None, names: list[str], batch_size: int = 16) -> np.ndarray:
    """Each name drawn once at 64 px by the embedded ``backend`` (fp32, CPU, seed = position), as uint8 arrays."""
    import genimg

    generator = genimg.load(backend, device="cpu")
    drawings = []
    for start in tqdm(range(0, len(names), batch_size), desc=f"drawing with {backend} {steps or ''}".strip()):
        chunk = names[start:start + batch_size]
        results = generator.generate_batch(chunk, list(range(start, start + len(chunk))), steps=steps)
        drawings += [np.asarray(result.images[0].convert("RGB")) for result in results]
    return np.stack(drawings)
