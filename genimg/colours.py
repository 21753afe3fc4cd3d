"""The seven colour words genimg draws, and how a picture's pixels are named by them.

One hue per word (degrees on the HSV wheel): the compositional training data recolours glyphs to these hues, and
the composition evaluation names an object's colour by the hue bin most of its coloured pixels fall in. Pixels that
are nearly grey (low saturation) or nearly black carry no hue and are not counted.
"""
from __future__ import annotations

import numpy as np

# name -> the hue a recoloured glyph gets (degrees)
HUES = {"red": 0, "orange": 30, "yellow": 55, "green": 125, "blue": 220, "purple": 280, "pink": 330}
COLOURS = tuple(HUES)
# Upper edges of each word's hue bin, in the order of the wheel from red (which wraps around 360).
_BIN_EDGES = ((15, "red"), (42, "orange"), (75, "yellow"), (170, "green"), (255, "blue"), (305, "purple"),
              (345, "pink"), (361, "red"))
MIN_SATURATION = 0.35  # below it a pixel reads as grey, white or black, whatever its hue
MIN_VALUE = 0.25


def rgb_to_hsv(pixels: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (..., 3) float HSV, hue in degrees [0, 360), saturation and value in [0, 1]."""
    rgb = pixels.astype(np.float32) / 255.0
    value = rgb.max(-1)
    chroma = value - rgb.min(-1)
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(value == r, ((g - b) / safe) % 6, np.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return np.stack([np.where(chroma > 0, hue * 60.0, 0.0) % 360, saturation, value], -1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(..., 3) float HSV (hue in degrees) -> (..., 3) uint8 RGB."""
    hue, saturation, value = hsv[..., 0] / 60.0, hsv[..., 1], hsv[..., 2]
    chroma = value * saturation
    x = chroma * (1 - np.abs(hue % 2 - 1))
    sector = np.floor(hue).astype(int) % 6
    zeros = np.zeros_like(chroma)
    table = [(chroma, x, zeros), (x, chroma, zeros), (zeros, chroma, x), (zeros, x, chroma), (x, zeros, chroma),
             (chroma, zeros, x)]
    rgb = np.zeros((*hue.shape, 3), np.float32)
    for index, channels in enumerate(table):
        rgb[sector == index] = np.stack(channels, -1)[sector == index]
    rgb += (value - chroma)[..., None]
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def colour_of_hue(hue: float) -> str:
    return next(name for edge, name in _BIN_EDGES if hue < edge)


def colour_shares(pixels: np.ndarray) -> dict[str, float]:
    """{colour word: share of the coloured pixels in its hue bin} over (N, 3) uint8 RGB pixels; {} where none is
    coloured."""
    hsv = rgb_to_hsv(pixels.reshape(-1, 3))
    coloured = hsv[(hsv[:, 1] >= MIN_SATURATION) & (hsv[:, 2] >= MIN_VALUE)]
    if len(coloured) == 0:
        return {}
    edges = np.array([edge for edge, _ in _BIN_EDGES])
    bins = np.searchsorted(edges, coloured[:, 0], side="right")
    shares: dict[str, float] = {}
    for bin_index, count in zip(*np.unique(bins, return_counts=True)):
        name = _BIN_EDGES[int(bin_index)][1]
        shares[name] = shares.get(name, 0.0) + count / len(coloured)
    return shares


def dominant_colour(pixels: np.ndarray) -> str | None:
    """The colour word most of the coloured pixels fall under; None where no pixel is coloured."""
    shares = colour_shares(pixels)
    return max(shares, key=shares.get) if shares else None
