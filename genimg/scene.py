"""A prompt as a scene: which objects, each with its colour, count and size, and where they stand.

The embedded models learned single emoji and, from the compositional world of ``genimg.train.scenes``, scenes of
up to two kinds of object: recoloured ("a blue rocket"), counted ("three stars"), small, side by side or one above
the other ("a rocket above an automobile"), each with its own colour ("a purple dog and a green key"). A scene is
written for them in one canonical form (``Scene.caption``): the one the training data uses most, with "to the right
of" and "below" turned around into "to the left of" and "above", so the models need to know two relations, not four.
``genimg.scene_parser`` turns what a user types into a ``Scene``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genimg.colours import COLOURS

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
CANVAS = 64  # pixels: the embedded models' square canvas, which ``layout`` arranges
MAX_COUNT = 4
# Relations as the canonical caption says them; "right of" and "below" are stored turned around.
RELATIONS = {"left of": "to the left of", "above": "above"}
_TURNED = {"right of": "left of", "below": "above"}
_PREPOSITIONS = (" of ", " with ", " in ", " on ", " for ", " at ")


def article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


_IRREGULAR = {"man": "men", "woman": "women", "person": "people", "mouse": "mice", "fish": "fish", "sheep": "sheep",
              "child": "children", "tooth": "teeth", "foot": "feet", "goose": "geese", "ox": "oxen", "leaf": "leaves",
              "knife": "knives", "wolf": "wolves", "deer": "deer", "bison": "bison"}


def _plural_word(word: str) -> str:
    for singular, plural_form in _IRREGULAR.items():
        if word == singular or (word.endswith(singular) and singular in ("man", "woman", "mouse", "fish")):
            return word[:len(word) - len(singular)] + plural_form
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def plural(name: str) -> str:
    """"star" -> "stars", "slice of pizza" -> "slices of pizza", "sailboat" -> "sailboats": the head noun (the word
    before the first preposition, else the last word) takes the plural."""
    padded = f" {name} "
    cut = min((padded.find(p) for p in _PREPOSITIONS if p in padded), default=-1)
    if cut > 0:
        head, rest = name[:cut - 1], name[cut - 1:]
        return _plural_word(head) + rest
    return _plural_word(name)


@dataclass(frozen=True)
class SceneObject:
    name: str  # the emoji name drawn ("rocket")
    colour: str | None = None  # one of genimg.colours.COLOURS, None: the emoji's own colours
    count: int = 1  # 1 to MAX_COUNT copies
    small: bool = False

    def __post_init__(self):
        if self.colour is not None and self.colour not in COLOURS:
            raise ValueError(f"Unknown colour {self.colour!r}: one of {', '.join(COLOURS)}.")
        if not 1 <= self.count <= MAX_COUNT:
            raise ValueError(f"count must be 1 to {MAX_COUNT}, got {self.count}.")

    def phrase(self) -> str:
        """"a small blue rocket", "three stars", "two purple dogs"."""
        words = [w for w in ("small" if self.small else None, self.colour) if w]
        if self.count == 1:
            return article(" ".join([*words, self.name]))
        return " ".join([NUMBER_WORDS[self.count], *words, plural(self.name)])

    def as_info(self) -> dict:
        info = {"name": self.name, "count": self.count}
        if self.colour:
            info["colour"] = self.colour
        if self.small:
            info["small"] = True
        return info


@dataclass(frozen=True)
class Scene:
    objects: tuple = ()  # one or two SceneObject
    relation: str | None = None  # "left of" or "above" (objects[0] relative to objects[1]); None: side by side
    unplaced: tuple = field(default=(), compare=False)  # words of the prompt the scene could not place
    # per object: (the words typed, the similarity of their nearest caption), as the parser snapped them
    matched: tuple = field(default=(), compare=False)

    def __post_init__(self):
        if not 1 <= len(self.objects) <= 2:
            raise ValueError(f"A scene has one or two kinds of object, got {len(self.objects)}.")
        if self.relation is not None and (self.relation not in RELATIONS or len(self.objects) != 2):
            raise ValueError(f"relation must be one of {', '.join(RELATIONS)} between two objects.")

    @classmethod
    def related(cls, first: SceneObject, relation: str | None, second: SceneObject, unplaced=(),
                matched=()) -> "Scene":
        """``first`` ``relation`` ``second``, any of the four relations ("right of", "below" are turned around)."""
        if relation in _TURNED:
            first, second, relation, matched = second, first, _TURNED[relation], tuple(matched)[::-1]
        return cls((first, second), relation, tuple(unplaced), tuple(matched))

    @property
    def arranged(self) -> bool:
        """Several objects, or a small one: the objects stand in slots of the canvas (``layout``)."""
        return len(copies(self)) > 1 or self.objects[0].small

    @property
    def is_single_emoji(self) -> bool:
        """A plain emoji: what the models drew before scenes (concept matching alone, today's speed)."""
        only = self.objects[0]
        return len(self.objects) == 1 and only.colour is None and only.count == 1 and not only.small

    def caption(self) -> str:
        """The canonical caption the models were trained on most: "a blue rocket above a red automobile"."""
        if len(self.objects) == 1:
            first = self.objects[0]
            return first.name if self.is_single_emoji else first.phrase()
        first, second = (obj.phrase() for obj in self.objects)
        joint = RELATIONS[self.relation] if self.relation else "and"
        return f"{first} {joint} {second}"

    def as_info(self) -> dict:
        objects = [obj.as_info() for obj in self.objects]
        for obj, (words, similarity) in zip(objects, self.matched):
            obj.update(typed=words, similarity=round(similarity, 3))
        info = {"caption": self.caption(), "objects": objects}
        if self.relation:
            info["relation"] = self.relation
        if self.unplaced:
            info["unplaced"] = list(self.unplaced)
        return info


def copies(scene: Scene) -> list[SceneObject]:
    """One entry per copy drawn, in the order of ``layout``'s slots."""
    return [obj for obj in scene.objects for _ in range(obj.count)]


def layout(scene: Scene, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(x, y, size) per copy on the CANVAS: full size for one object, 28-30 px in the halves or quarters of the canvas
    for more, with a few pixels of jitter that keep every copy whole and apart. The training scenes are drawn with
    it (``genimg.train.scenes``), and so is a prompt's scene with ``layout=True`` (``BaseGenerator``)."""
    full = CANVAS
    if len(scene.objects) == 1 and scene.objects[0].count == 1:
        if scene.objects[0].small:
            size = int(rng.integers(28, 37))
            return [tuple(int(v) for v in rng.integers(4, full - size - 3, 2)) + (size,)]
        return [(0, 0, full)]
    half = full // 2
    size = int(rng.integers(27, 31))
    jitter = lambda: int(rng.integers(0, half - size + 1))  # noqa: E731
    count = sum(obj.count for obj in scene.objects)
    if count == 2:  # two slots, side by side or one above the other
        along = int(rng.integers(half // 2 - 6, half // 2 + 7))
        vertical = scene.relation == "above" or (scene.relation is None and rng.random() < 0.5)
        slots = ([(along, jitter(), size), (along, half + jitter(), size)] if vertical
                 else [(jitter(), along, size), (half + jitter(), along, size)])
        # "A and B" says nothing of where each stands: either order.
        return slots[::-1] if scene.relation is None and rng.random() < 0.5 else slots
    cells = [(0, 0), (half, 0), (0, half), (half, half)]
    if count == 3:  # two in one row, one centred in the other
        top = rng.random() < 0.5
        cells = [(0, 0 if top else half), (half, 0 if top else half), (half // 2, half if top else 0)]
    return [(x + jitter(), y + jitter(), size) for x, y in cells]
