"""The compositional emoji world: scenes built from the font's glyphs by data augmentation, each captioned with
what was done.

A scene holds one or two kinds of object (see ``genimg.scene``): a glyph recoloured to one of seven colours (hue
set, shading kept; never to its own colour), 2-4 copies of it each whole and apart, a small one, or two glyphs side
by side or one above the other, each with its own colour or none. Every caption names every object and attribute;
relations and colour attributions come in minimal pairs (sides swapped, colours swapped, one after the other); each
factor is also shown alone; a quarter of the captions say the same thing another way ("B to the right of A", "3
stars", "A on top of B"), the rest use the canonical caption the scene parser writes at inference.

Some pairings are kept out of training for ``python -m genimg evaluate --composition`` (``HELD_OUT``): object pairs,
object-colour pairs and object-count pairs among ``EVAL_OBJECTS``. The set is rendered once (deterministic from its
seed) and cached beside the emoji dataset.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFont
from tqdm import tqdm

from genimg.colours import COLOURS, HUES, colour_shares, hsv_to_rgb, rgb_to_hsv
from genimg.scene import Scene, SceneObject, copies, layout, plural
from genimg.train.data import (_BITMAP_SIZE, IMAGE_SIZE, EmojiDataset, _render, cache_dir, find_font,
                               skin_tone_family)

# Common things with distinct shapes and no colour in their names: the evaluation's objects (as COCO's 80 classes
# are GenEval's). Half of the objects of the training scenes are drawn from them, half from every composable emoji.
EVAL_OBJECTS = ("rocket", "automobile", "guitar", "dog", "cat", "key", "star", "crown", "bird", "fish", "umbrella",
                "bicycle", "airplane", "ghost", "banana", "house", "mushroom", "anchor", "bell", "light bulb",
                "trophy", "snowman", "cactus", "pineapple", "hamburger", "pizza", "teddy bear", "robot", "turtle",
                "elephant", "rabbit", "butterfly")
SCENES_VERSION = 1  # part of the cache key: bump when rendering or captions change
DEFAULT_SCENES = 40_000
# What share of the scenes is of each kind (minimal pairs count twice).
KIND_SHARES = {"colour": 0.2, "small": 0.05, "count": 0.2, "pair": 0.1, "relation": 0.25, "attribution": 0.2}
CANONICAL_SHARE = 0.75  # the rest of the captions are paraphrases of the canonical one
OWN_COLOUR_SHARE = 0.2
_SATURATION = 0.75  # a recoloured glyph's least saturation: its shading stays in value


@dataclass(frozen=True)
class HeldOut:
    pairs: frozenset  # frozenset({a, b}) object pairs never drawn together in training
    colours: frozenset  # (object, colour) never drawn in training
    counts: frozenset  # (object, count) never drawn in training

    def allows(self, scene: Scene) -> bool:
        names = [obj.name for obj in scene.objects]
        if len(names) == 2 and frozenset(names) in self.pairs:
            return False
        return not any((obj.name, obj.colour) in self.colours or (obj.name, obj.count) in self.counts
                       for obj in scene.objects)


def held_out(seed: int = 2023) -> HeldOut:
    """The evaluation's pairings: 40 object pairs, 40 object-colour pairs and 24 object-count pairs, fixed by
    ``seed``."""
    rng = np.random.default_rng(seed)
    pairs = list(itertools.combinations(EVAL_OBJECTS, 2))
    colours = list(itertools.product(EVAL_OBJECTS, COLOURS))
    counts = list(itertools.product(EVAL_OBJECTS, range(2, 5)))
    pick = lambda items, n: [items[i] for i in rng.choice(len(items), n, replace=False)]  # noqa: E731
    return HeldOut(frozenset(frozenset(p) for p in pick(pairs, 40)), frozenset(pick(colours, 40)),
                   frozenset(pick(counts, 24)))


HELD_OUT = held_out()


_PEOPLE = frozenset("man woman person people men women family couple kiss".split())


def _is_flag(char: str) -> bool:
    return any(0x1F1E6 <= ord(c) <= 0x1F1FF for c in char) or (char.startswith("\U0001F3F4") and len(char) > 1)


def composable(dataset: EmojiDataset) -> list[int]:
    """The emoji a scene may hold: distinct things with short names; no skin-tone variants, flags, keycaps or people
    doing something ("man golfing" has no plural a caption could use)."""
    keep = []
    for index, (name, char) in enumerate(zip(dataset.names, dataset.chars)):
        if skin_tone_family(name) != name or name.startswith(("flag", "keycap")) or ":" in name or _is_flag(char):
            continue
        if _PEOPLE & set(name.lower().split()):
            continue
        if len(name.split()) <= 3 and len(name) <= 20:
            keep.append(index)
    return keep


def recolour(rgba: np.ndarray, colour: str) -> np.ndarray:
    """(H, W, 4) uint8 glyph -> the same glyph in ``colour``: hue set, saturation raised to at least _SATURATION,
    value (its shading and outlines) and alpha kept."""
    hsv = rgb_to_hsv(rgba[..., :3])
    hsv[..., 0] = HUES[colour]
    hsv[..., 1] = np.maximum(hsv[..., 1], _SATURATION)
    return np.concatenate([hsv_to_rgb(hsv), rgba[..., 3:]], -1)


class SceneRenderer:
    """Draws scenes from the glyphs (RGBA, rendered from the font once)."""

    def __init__(self, dataset: EmojiDataset, font_path: str):
        font = ImageFont.truetype(font_path, _BITMAP_SIZE, layout_engine=ImageFont.Layout.RAQM)
        self.index = {name: i for i, name in enumerate(dataset.names)}
        self.chars, self.font = dataset.chars, font
        self._glyphs: dict[int, np.ndarray] = {}
        # Each glyph's own colour, so that a colour prompt never asks for it.
        self.own_colour = {}

    def glyph(self, name: str) -> np.ndarray:
        index = self.index[name]
        if index not in self._glyphs:
            self._glyphs[index] = np.asarray(_render(self.font, self.chars[index], IMAGE_SIZE, on_white=False))
        return self._glyphs[index]

    def own_colours(self, name: str) -> set[str]:
        """The colours that make up at least OWN_COLOUR_SHARE of the glyph's coloured pixels: a colour prompt never
        asks for one of them (a yellow banana is no test of colour)."""
        if name not in self.own_colour:
            rgba = self.glyph(name)
            shares = colour_shares(rgba[..., :3][rgba[..., 3] > 128])
            self.own_colour[name] = {colour for colour, share in shares.items() if share >= OWN_COLOUR_SHARE}
        return self.own_colour[name]

    def draw(self, scene: Scene, rng: np.random.Generator) -> np.ndarray:
        """(64, 64, 3) uint8 on white."""
        canvas = Image.new("RGBA", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255, 255))
        for obj, (x, y, size) in zip(copies(scene), layout(scene, rng)):
            rgba = self.glyph(obj.name)
            if obj.colour:
                rgba = recolour(rgba, obj.colour)
            tile = Image.fromarray(rgba, "RGBA").resize((size, size), Image.LANCZOS)
            canvas.alpha_composite(tile, (x, y))
        return np.asarray(canvas.convert("RGB"))


_RELATION_PHRASES = {"left of": ("{a} left of {b}", "{a} on the left of {b}", "{b} to the right of {a}",
                                 "{b} right of {a}", "{a} next to {b} on the left"),
                     "above": ("{a} on top of {b}", "{b} below {a}", "{b} under {a}", "{b} beneath {a}",
                               "{a} over {b}")}


def paraphrase(scene: Scene, rng: np.random.Generator) -> str:
    """Another way to say the scene's caption."""
    phrases = [obj.phrase() for obj in scene.objects]
    if len(scene.objects) == 2:
        if scene.relation:
            template = _RELATION_PHRASES[scene.relation][int(rng.integers(len(_RELATION_PHRASES[scene.relation])))]
            return template.format(a=phrases[0], b=phrases[1])
        return " ".join([phrases[1], ("and", "with", "next to")[int(rng.integers(3))], phrases[0]])
    obj = scene.objects[0]
    if obj.count > 1:
        words = [str(obj.count), *([obj.colour] if obj.colour else []), plural(obj.name)]
        return " ".join(words)
    if obj.small:
        return phrases[0].replace("small", "tiny")
    return f"{obj.colour} {obj.name}" if rng.random() < 0.5 else f"{phrases[0]} in {obj.colour}"


class SceneSampler:
    """Draws random scenes of each kind, minding the held-out pairings and the glyphs' own colours."""

    def __init__(self, names: list[str], renderer: SceneRenderer, rng: np.random.Generator,
                 held: HeldOut = HELD_OUT):
        self.names, self.renderer, self.rng, self.held = names, renderer, rng, held
        self.common = [name for name in EVAL_OBJECTS if name in renderer.index]

    def name(self) -> str:
        pool = self.common if self.rng.random() < 0.5 else self.names
        return pool[int(self.rng.integers(len(pool)))]

    def colour(self, name: str, avoid: str | None = None) -> str:
        options = [c for c in COLOURS if c not in self.renderer.own_colours(name) and c != avoid
                   and (name, c) not in self.held.colours]
        return options[int(self.rng.integers(len(options)))]

    def scenes(self, kind: str) -> list[Scene]:
        """One scene, or a minimal pair of two for relations and colour attributions."""
        rng = self.rng
        while True:
            if kind in ("colour", "small", "count"):
                name = self.name()
                count = int(rng.integers(2, 5)) if kind == "count" else 1
                coloured = kind == "colour" or (kind == "count" and rng.random() < 0.3)
                obj = SceneObject(name, self.colour(name) if coloured else None, count, kind == "small")
                found = [Scene((obj,))]
            else:
                first, second = self.name(), self.name()
                if first == second:
                    continue
                colours = (None, None)
                if kind == "attribution":
                    colours = (self.colour(first), None)
                    colours = (colours[0], self.colour(second, avoid=colours[0]))
                relation = None if kind == "pair" or (kind == "attribution" and rng.random() < 0.5) else \
                    ("left of", "above")[int(rng.integers(2))]
                a, b = SceneObject(first, colours[0]), SceneObject(second, colours[1])
                found = [Scene((a, b), relation)]
                if relation:  # the same two, sides swapped
                    found.append(Scene((b, a), relation))
                elif kind == "attribution":  # the same two, colours swapped
                    found.append(Scene((SceneObject(first, colours[1]), SceneObject(second, colours[0]))))
            if all(self.held.allows(scene) for scene in found):
                return found


def _kinds(total: int, rng: np.random.Generator) -> list[str]:
    kinds = list(KIND_SHARES)
    shares = np.array([KIND_SHARES[k] / (2 if k in ("relation", "attribution") else 1) for k in kinds])
    return [kinds[i] for i in rng.choice(len(kinds), total, p=shares / shares.sum())]


def render_scenes(dataset: EmojiDataset, count: int = DEFAULT_SCENES, seed: int = 0) -> EmojiDataset:
    """``count`` scenes as an EmojiDataset: images, the canonical captions as names, one caption each (canonical or
    a paraphrase) and each scene's description in ``chars`` (JSON)."""
    font = find_font()
    if font is None:
        raise FileNotFoundError("Noto Color Emoji is not installed: apt-get install fonts-noto-color-emoji.")
    rng = np.random.default_rng(seed)
    renderer = SceneRenderer(dataset, font)
    sampler = SceneSampler([dataset.names[i] for i in composable(dataset)], renderer, rng)
    images, names, captions, described = [], [], [], []
    bar = tqdm(total=count, desc="rendering scenes")
    for kind in _kinds(count, rng):
        for scene in sampler.scenes(kind):
            images.append(renderer.draw(scene, rng))
            names.append(scene.caption())
            captions.append([scene.caption() if rng.random() < CANONICAL_SHARE else paraphrase(scene, rng)])
            described.append(json.dumps(scene.as_info()))
            bar.update()
        if len(images) >= count:
            break
    bar.close()
    return EmojiDataset(np.stack(images[:count]), names[:count], captions[:count], described[:count])


def load_scenes(dataset: EmojiDataset, count: int = DEFAULT_SCENES, seed: int = 0) -> EmojiDataset:
    """The scenes, rendered once and read from the cache after."""
    path = cache_dir() / f"scenes-v{SCENES_VERSION}-{len(dataset)}-{count}-{seed}.npz"
    if path.exists():
        stored = np.load(path, allow_pickle=False)
        meta = json.loads(str(stored["meta"]))
        return EmojiDataset(stored["images"], meta["names"], meta["captions"], meta["chars"])
    scenes = render_scenes(dataset, count, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"names": scenes.names, "captions": scenes.captions, "chars": scenes.chars})
    np.savez_compressed(path, images=scenes.images, meta=np.array(meta))
    return scenes

