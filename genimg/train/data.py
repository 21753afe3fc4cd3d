"""The embedded world: every emoji the Noto Color Emoji font draws as one glyph, 64x64 on white, with captions.

The same glyphs at 128x128 (``load_dataset(size=128)``, same order) are the upscaler's targets: the font's colour
bitmaps are 136x128, so 128 px keeps their detail.

Captions come from the ``emoji`` package (CLDR name and aliases) plus a few natural phrasings. The rendered set is
cached to disk; ``procedural_dataset`` is a tiny stand-in (coloured shapes) for tests on machines without the font.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

FONT_PATHS = ("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf", "/usr/share/fonts/noto/NotoColorEmoji.ttf")
IMAGE_SIZE = 64
SIZES = (64, 128)  # 64: what the generators draw; 128: the upscaler's targets
_BITMAP_SIZE = 109  # the only size of the font's colour bitmaps (CBDT strikes)
_FULLY_QUALIFIED = 2  # emoji.STATUS["fully_qualified"]


def cache_dir() -> Path:
    return Path(os.environ.get("GENIMG_CACHE", Path.home() / ".cache" / "genimg"))


@dataclass
class EmojiDataset:
    images: np.ndarray  # (N, size, size, 3) uint8, RGB on white (size 64, or 128 for the upscaler)
    names: list  # N canonical names ("slice of pizza")
    captions: list  # N lists of captions, the name first
    chars: list  # N emoji strings ("" for the procedural stand-in)

    def __len__(self) -> int:
        return len(self.names)


# A skin-tone variant is its base emoji recoloured: "thumbs up medium-dark skin tone" belongs to "thumbs up".
_SKIN_TONE = re.compile(r",?\s*\b(?:medium-light|medium-dark|light|medium|dark) skin tone\b")


def skin_tone_family(name: str) -> str:
    """The name without its skin-tone modifiers: every variant of one emoji shares it."""
    return re.sub(r"\s+", " ", _SKIN_TONE.sub("", name)).strip(" ,")


def sampling_weights(names: list[str], balance: str = "uniform") -> np.ndarray:
    """How often training draws each emoji. Half of the set is skin-tone variants (a family of up to 26 near-copies),
    so uniform draws spend half the steps on recolourings. ``"sqrt-family"`` weighs each emoji by 1/sqrt(family size)
    (square-root resampling, as for long-tailed classes): variants get 29% of draws instead of 50%, each distinct
    emoji 1.57x more."""
    if balance == "uniform":
        return np.ones(len(names))
    if balance != "sqrt-family":
        raise ValueError(f"Unknown balance {balance!r}: use 'uniform' or 'sqrt-family'.")
    families = [skin_tone_family(name) for name in names]
    sizes = {family: families.count(family) for family in set(families)}
    return np.array([sizes[family] ** -0.5 for family in families])


def find_font() -> str | None:
    return next((p for p in FONT_PATHS if Path(p).exists()), None)


def _clean_name(code: str) -> str:
    return code.strip(":").replace("_", " ").strip()


def with_article(name: str) -> str:
    return ("an " if name[0] in "aeiou" else "a ") + name


def phrasings(name: str) -> list:
    """The fixed phrasings around a name; the first ("a pizza") is how users start most prompts."""
    return [with_article(name), f"{name} emoji", f"an emoji of {with_article(name)}", f"a picture of {name}"]


def captions_for(name: str, aliases: list) -> list:
    return list(dict.fromkeys([name, *aliases, *phrasings(name)]))


def _render(font, char: str, size: int = IMAGE_SIZE, on_white: bool = True) -> Image.Image | None:
    """The glyph composited on white (or RGBA on transparent, ``on_white=False``), or None where the font would draw
    it as several glyphs or none."""
    if abs(font.getlength(char) - font.getlength("\U0001F600")) > 1:
        return None  # not a single glyph: a sequence the font does not ligate
    canvas = Image.new("RGBA", (136, 136), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((0, 4), char, font=font, embedded_color=True)
    if canvas.getbbox() is None:
        return None
    if not on_white:
        return canvas.resize((size, size), Image.LANCZOS)
    white = Image.new("RGBA", canvas.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, canvas).convert("RGB").resize((size, size), Image.LANCZOS)


def _is_missing_glyph(font, image: Image.Image) -> bool:
    return np.array_equal(np.asarray(image), np.asarray(_render(font, "\U000F0000") or image))


def render_emoji_dataset(font_path: str, size: int = IMAGE_SIZE) -> EmojiDataset:
    import emoji

    font = ImageFont.truetype(font_path, _BITMAP_SIZE, layout_engine=ImageFont.Layout.RAQM)
    tofu = _render(font, "\U000F0000")  # a private-use code point: what a missing glyph looks like
    images, names, captions, chars = [], [], [], []
    for char, data in tqdm(emoji.EMOJI_DATA.items(), desc="rendering emoji"):
        if data["status"] != _FULLY_QUALIFIED:
            continue
        image = _render(font, char)  # the 64 px test decides which glyphs exist, so every size lists the same emoji
        if image is None or (tofu is not None and np.array_equal(np.asarray(image), np.asarray(tofu))):
            continue
        if size != IMAGE_SIZE:
            image = _render(font, char, size)
        name = _clean_name(data["en"])
        aliases = [_clean_name(a) for a in data.get("alias", [])]
        images.append(np.asarray(image))
        names.append(name)
        captions.append(captions_for(name, aliases))
        chars.append(char)
    return EmojiDataset(np.stack(images), names, captions, chars)


_SHAPES = ("circle", "square", "triangle")
_COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 200, 30),
            "purple": (140, 60, 180), "orange": (245, 140, 20), "black": (20, 20, 20), "pink": (240, 120, 170)}


def procedural_dataset(size: int = IMAGE_SIZE) -> EmojiDataset:
    """24 coloured shapes with captions: the stand-in world for tests and for machines without the font."""
    images, names, scale = [], [], size / IMAGE_SIZE
    for shape in _SHAPES:
        for colour, rgb in _COLOURS.items():
            image = Image.new("RGB", (size, size), "white")
            draw = ImageDraw.Draw(image)
            box = tuple(scale * v for v in (12, 12, 52, 52))
            if shape == "circle":
                draw.ellipse(box, fill=rgb)
            elif shape == "square":
                draw.rectangle(box, fill=rgb)
            else:
                draw.polygon([(scale * x, scale * y) for x, y in ((32, 10), (54, 52), (10, 52))], fill=rgb)
            images.append(np.asarray(image))
            names.append(f"{colour} {shape}")
    return EmojiDataset(np.stack(images), names, [captions_for(n, []) for n in names], [""] * len(names))


def load_dataset(kind: str = "emoji", refresh: bool = False, size: int = IMAGE_SIZE) -> EmojiDataset:
    """The emoji dataset at ``size`` px (rendered once, then read from the cache) or the procedural stand-in."""
    if size not in SIZES:
        raise ValueError(f"Unknown size {size!r}: one of {SIZES}.")
    if kind == "procedural":
        return procedural_dataset(size)
    if kind != "emoji":
        raise ValueError(f"Unknown dataset {kind!r}: 'emoji' or 'procedural'.")
    path = cache_dir() / f"emoji{size}.npz"
    if path.exists() and not refresh:
        stored = np.load(path, allow_pickle=False)
        meta = json.loads(str(stored["meta"]))
        return EmojiDataset(stored["images"], meta["names"], meta["captions"], meta["chars"])
    font = find_font()
    if font is None:
        raise FileNotFoundError("Noto Color Emoji is not installed: apt-get install fonts-noto-color-emoji "
                                "(or use the procedural stand-in dataset).")
    dataset = render_emoji_dataset(font, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"names": dataset.names, "captions": dataset.captions, "chars": dataset.chars})
    np.savez_compressed(path, images=dataset.images, meta=np.array(meta))
    return dataset
