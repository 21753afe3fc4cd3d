"""Layout-grounded drawing's two pure steps: what each object of a scene is drawn as, and the arrangement of the
drawings on the canvas (``BaseGenerator._draw_layout`` runs the model in between).

After LLM-grounded Diffusion (Lian et al., 2023), with genimg's scene parser in place of the LLM: every object of the
scene is drawn alone by the model, full size, with its own colour; the drawings are then scaled into the slots of
``genimg.scene.layout`` (the layout the training scenes use) on a white canvas. The model draws every object and its
colour; the arrangement is the scene's.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.nn import functional as F

from genimg.scene import Scene, copies, layout


def object_captions(scene: Scene) -> list[str]:
    """What each copy is drawn as, in the layout's slot order: its emoji name, or with its colour "a purple dog"."""
    return [obj.name if obj.colour is None else dataclasses.replace(obj, count=1, small=False).phrase()
            for obj in copies(scene)]


def arrange(drawn: torch.Tensor, scene: Scene, rows: int, seed: int) -> tuple[torch.Tensor, list]:
    """(rows * copies, 3, H, W) drawings in [-1, 1], each image's copies together in slot order -> (rows, 3, H, W)
    canvases, white where no slot is, and each image's slots (x, y, size). Image ``row``'s layout jitter is seeded by
    (seed, row): the same seed gives the same picture."""
    per_row = len(copies(scene))
    height, width = drawn.shape[-2:]
    canvas = torch.ones((rows, 3, height, width), device=drawn.device, dtype=torch.float32)
    slots = [layout(scene, np.random.default_rng([int(seed), row])) for row in range(rows)]
    for row, row_slots in enumerate(slots):
        for index, (x, y, size) in enumerate(row_slots):
            tile = drawn[row * per_row + index][None].float()  # (1, 3, H, W)
            tile = F.interpolate(tile, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
            canvas[row, :, y:y + size, x:x + size] = tile[0].clamp(-1, 1)
    return canvas.to(drawn.dtype), slots
