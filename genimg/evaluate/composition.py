"""``python -m genimg evaluate --composition``: GenEval's six tasks (Ghosh et al., 2023) in the emoji world.

Prompts (16 per task, from ``genimg.train.scenes.EVAL_OBJECTS`` and only from the pairings kept out of training,
``HELD_OUT``): single object ("a rocket"), two objects ("a rocket and a guitar"), counting ("three stars"), colours
("a blue rocket"; never the object's own colour), position ("a crown below a bird") and colour attribution ("a
purple dog and a green key"). Each prompt is drawn ``images_per_prompt`` times through ``generate`` (concept matching
and the scene parser on, as users run it) and each image is right or wrong by rule, as GenEval's detector-based rules:

- **Objects found on the canvas**: connected regions of ink (pixels away from the white background, closed by one
  pixel), each at least ``MIN_AREA`` pixels.
- **Each named by a classifier that still knows a recoloured glyph**: the region's crop (greyscale and ink mask, 32x32,
  square-padded) against templates of every evaluation object in its own colours and recoloured to each of the seven,
  by cosine similarity; a region nearer no template than ``MIN_SIMILARITY`` is no object.
- **Colour** from the hue of the region's pixels (``genimg.colours``), **exact counts**, and GenEval's **position**
  rule (centres apart by more than 0.1 of the boxes' sizes, the main direction within 60 degrees).

Nothing here is the judge: best-of-N selects by the judge, so the rules grade it without grading themselves. The
``oracle`` row scores the scenes rendered from the font for the same prompts: the ceiling the rules allow.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from genimg.colours import COLOURS, dominant_colour
from genimg.scene import NUMBER_WORDS, Scene, SceneObject, article, plural
from genimg.train.scenes import EVAL_OBJECTS, HELD_OUT, HeldOut, SceneRenderer, recolour

TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
PROMPTS_PER_TASK = 16
INK = 20  # a pixel is ink when its darkest channel is this far below white (255): light glyphs (a snowman) need it low
MIN_AREA = 24  # pixels: smaller regions are specks
MIN_SIMILARITY = 0.55
POSITION_THRESHOLD = 0.1  # GenEval's
_RELATIONS = ("left of", "right of", "above", "below")
_RELATION_WORDS = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
# Published GenEval overall scores (real photos, a Mask2Former detector): another world, the anchors a user knows.
GENEVAL_ANCHORS = {"SD-1.5": 0.43, "SD-2.1": 0.50, "SDXL": 0.55, "SDXL-Turbo": 0.55, "FLUX.1-dev": 0.66,
                   "DALL-E 3": 0.67, "SD3 (8B, DPO)": 0.74, "CLIP retrieval (baseline)": 0.35}


@dataclass(frozen=True)
class CompositionPrompt:
    task: str
    prompt: str  # what is typed
    objects: tuple  # the SceneObjects expected, in the prompt's order
    relation: str | None = None  # position: objects[0] relation objects[1], one of _RELATIONS


def composition_prompts(renderer_colours, held: HeldOut = HELD_OUT, seed: int = 0) -> list[CompositionPrompt]:
    """PROMPTS_PER_TASK prompts per task, fixed by ``seed``; ``renderer_colours(name)`` gives an object's own
    colours (never asked for)."""
    rng = random.Random(seed)
    pairs = sorted(tuple(sorted(pair)) for pair in held.pairs)
    rng.shuffle(pairs)
    colours = sorted((name, colour) for name, colour in held.colours if colour not in renderer_colours(name))
    counts = sorted(held.counts)
    rng.shuffle(colours)
    rng.shuffle(counts)
    take = PROMPTS_PER_TASK
    prompts = [CompositionPrompt("single_object", article(name), (SceneObject(name),))
               for name in rng.sample(EVAL_OBJECTS, take)]
    prompts += [CompositionPrompt("two_object", f"{article(a)} and {article(b)}", (SceneObject(a), SceneObject(b)))
                for a, b in pairs[:take]]
    prompts += [CompositionPrompt("counting", f"{NUMBER_WORDS[n]} {plural(name)}", (SceneObject(name, count=n),))
                for name, n in counts[:take]]
    prompts += [CompositionPrompt("colors", article(f"{colour} {name}"), (SceneObject(name, colour),))
                for name, colour in colours[:take]]
    for a, b in pairs[take:2 * take]:
        relation = rng.choice(_RELATIONS)
        prompts.append(CompositionPrompt("position", f"{article(a)} {_RELATION_WORDS[relation]} {article(b)}",
                                         (SceneObject(a), SceneObject(b)), relation))
    for a, b in pairs[len(pairs) - take:]:
        first, second = rng.sample([c for c in COLOURS if c not in renderer_colours(a) | renderer_colours(b)], 2)
        prompts.append(CompositionPrompt("color_attr", f"{article(f'{first} {a}')} and {article(f'{second} {b}')}",
                                         (SceneObject(a, first), SceneObject(b, second))))
    return prompts


@dataclass
class Found:
    name: str | None  # the evaluation object it looks most like; None: like none of them
    similarity: float
    box: tuple  # (x0, y0, x1, y1), pixels, exclusive end
    colour: str | None


def _features(crop_rgb: np.ndarray) -> np.ndarray:
    """A region's shape, colour left out: greyscale and ink mask of its square-padded crop at 32x32, centred and
    L2-normalised."""
    height, width = crop_rgb.shape[:2]
    side = max(height, width)
    square = np.full((side, side, 3), 255, np.uint8)
    square[(side - height) // 2:(side - height) // 2 + height, (side - width) // 2:(side - width) // 2 + width] = crop_rgb
    small = np.asarray(Image.fromarray(square).resize((32, 32), Image.BILINEAR)).astype(np.float32) / 255
    grey = small.mean(-1)
    ink = (1 - small.min(-1))
    vector = np.concatenate([1 - grey, ink]).ravel()
    vector -= vector.mean()
    return vector / max(float(np.linalg.norm(vector)), 1e-6)


def ink_regions(image: np.ndarray) -> list[tuple]:
    """Bounding boxes (x0, y0, x1, y1) and masks of the connected regions of ink, largest first."""
    ink = (255 - image.min(-1).astype(int)) > INK
    labels, count = ndimage.label(ndimage.binary_closing(ink, iterations=1) | ink, structure=np.ones((3, 3)))
    regions = []
    for index, slices in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels[slices] == index
        if mask.sum() >= MIN_AREA:
            regions.append(((slices[1].start, slices[0].start, slices[1].stop, slices[0].stop), mask))
    return sorted(regions, key=lambda region: -region[1].sum())


class GlyphClassifier:
    """Names a region by the nearest template: each evaluation object in its own colours and in the seven others."""

    def __init__(self, renderer: SceneRenderer, names=EVAL_OBJECTS):
        templates, owners = [], []
        for name in names:
            rgba = renderer.glyph(name)
            for colour in (None, *COLOURS):
                glyph = recolour(rgba, colour) if colour else rgba
                canvas = Image.new("RGBA", rgba.shape[1::-1], (255, 255, 255, 255))
                canvas.alpha_composite(Image.fromarray(glyph, "RGBA"))
                rgb = np.asarray(canvas.convert("RGB"))
                box = self._union_box(rgb)
                templates.append(_features(rgb[box[1]:box[3], box[0]:box[2]]))
                owners.append(name)
        self.templates, self.owners = np.stack(templates), owners

    @staticmethod
    def _union_box(rgb: np.ndarray):
        ys, xs = np.nonzero((255 - rgb.min(-1).astype(int)) > INK)
        return (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else None

    def find(self, image: np.ndarray) -> list[Found]:
        found = []
        for (x0, y0, x1, y1), mask in ink_regions(image):
            crop = image[y0:y1, x0:x1]
            similarities = self.templates @ _features(crop)
            best = int(similarities.argmax())
            similarity = float(similarities[best])
            name = self.owners[best] if similarity >= MIN_SIMILARITY else None
            found.append(Found(name, similarity, (x0, y0, x1, y1), dominant_colour(crop[mask])))
        return found


def relative_position(box_a: tuple, box_b: tuple) -> set:
    """GenEval's rule: the relations of A to B, factoring in the boxes' sizes."""
    boxes = np.array([box_a, box_b], dtype=np.float64).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def judge_image(prompt: CompositionPrompt, found: list[Found]) -> bool:
    """Whether the objects found satisfy the prompt, by its task's rule."""
    by_name = {}
    for item in found:  # largest region first: the first of each name is the one a rule looks at
        if item.name is not None:
            by_name.setdefault(item.name, []).append(item)
    wanted = prompt.objects
    if prompt.task == "counting":
        return len(by_name.get(wanted[0].name, [])) == wanted[0].count
    if any(obj.name not in by_name for obj in wanted):
        return False
    if prompt.task in ("colors", "color_attr"):
        return all(by_name[obj.name][0].colour == obj.colour for obj in wanted)
    if prompt.task == "position":
        a, b = by_name[wanted[0].name][0], by_name[wanted[1].name][0]
        return a is not b and prompt.relation in relative_position(a.box, b.box)
    return True


def oracle_scene(prompt: CompositionPrompt) -> Scene:
    """The scene a perfect model would draw for the prompt."""
    if len(prompt.objects) == 1:
        return Scene(prompt.objects)
    return Scene.related(prompt.objects[0], prompt.relation, prompt.objects[1])


def score(prompts: list[CompositionPrompt], images: list[list[np.ndarray]], classifier: GlyphClassifier) -> dict:
    """Per task and overall (GenEval's overall: the mean of the six task scores), and each prompt's hits."""
    per_prompt, by_task = [], {task: [] for task in TASKS}
    for prompt, drawn in zip(prompts, images):
        hits = [judge_image(prompt, classifier.find(image)) for image in drawn]
        per_prompt.append({"task": prompt.task, "prompt": prompt.prompt, "hits": hits})
        by_task[prompt.task].extend(hits)
    tasks = {task: float(np.mean(hits)) for task, hits in by_task.items() if hits}
    return {"tasks": tasks, "overall": float(np.mean(list(tasks.values()))), "per_prompt": per_prompt}


def timed_generations(generator, prompts: list[CompositionPrompt], images_per_prompt: int, seed: int, **kwargs):
    """Each prompt drawn ``images_per_prompt`` times in one ``generate`` call; images as uint8 64x64 arrays (an
    upscaled drawing is brought back to 64 px to be judged), and the median ms per image."""
    images, per_image_ms = [], []
    for index, prompt in enumerate(prompts):
        started = time.perf_counter()
        result = generator.generate(prompt.prompt, batch_size=images_per_prompt, seed=seed + index, **kwargs)
        per_image_ms.append(1000 * (time.perf_counter() - started) / images_per_prompt)
        images.append([np.asarray(image.convert("RGB").resize((64, 64), Image.BICUBIC)
                                  if image.size != (64, 64) else image.convert("RGB")) for image in result.images])
    return images, float(np.median(per_image_ms))
