"""The compositional world (genimg.train.scenes) and the rules that grade it (genimg.evaluate.composition)."""
import json

import numpy as np
import pytest

from genimg.colours import COLOURS, colour_of_hue, dominant_colour, hsv_to_rgb, rgb_to_hsv
from genimg.scene import Scene, SceneObject
from genimg.train.data import find_font, load_dataset

needs_font = pytest.mark.skipif(find_font() is None, reason="Noto Color Emoji not installed "
                                                            "(apt-get install fonts-noto-color-emoji)")


def test_hue_bins_and_the_hsv_round_trip():
    assert [colour_of_hue(h) for h in (0, 30, 55, 125, 220, 280, 330, 359)] == [
        "red", "orange", "yellow", "green", "blue", "purple", "pink", "red"]
    pixels = np.random.default_rng(0).integers(0, 256, (500, 3), dtype=np.uint8)
    assert np.abs(hsv_to_rgb(rgb_to_hsv(pixels)).astype(int) - pixels).max() <= 1
    assert dominant_colour(np.full((10, 3), 128, np.uint8)) is None  # grey has no colour


def test_recolouring_gives_every_colour_its_own_hue_and_keeps_the_shape():
    from genimg.train.scenes import recolour

    glyph = np.zeros((8, 8, 4), np.uint8)
    glyph[2:6, 2:6] = (200, 60, 40, 255)  # a reddish square, shaded
    glyph[3, 3, :3] = (30, 30, 30)  # a dark outline pixel
    for colour in COLOURS:
        recoloured = recolour(glyph, colour)
        assert dominant_colour(recoloured[2:6, 2:6, :3].reshape(-1, 3)) == colour
        assert (recoloured[..., 3] == glyph[..., 3]).all()
        assert recoloured[3, 3, :3].max() <= 31  # value kept: outlines stay dark


@pytest.fixture(scope="module")
def emoji():
    return load_dataset("emoji")


@needs_font
def test_scenes_are_deterministic_captioned_and_keep_the_held_out_pairings_out(emoji):
    from genimg.train.scenes import HELD_OUT, render_scenes

    scenes = render_scenes(emoji, 120, seed=3)
    again = render_scenes(emoji, 120, seed=3)
    assert (scenes.images == again.images).all() and scenes.captions == again.captions
    kinds = set()
    for caption, info in zip(scenes.names, scenes.chars):
        described = json.loads(info)
        objects = [SceneObject(o["name"], o.get("colour"), o["count"], o.get("small", False))
                   for o in described["objects"]]
        scene = Scene(tuple(objects), described.get("relation"))
        assert HELD_OUT.allows(scene)
        assert scene.caption() == caption
        for obj in objects:  # every caption names every object and attribute
            assert obj.colour is None or obj.colour in caption
        kinds.add((len(objects), described.get("relation"), objects[0].count > 1, objects[0].colour is not None))
    assert len(kinds) >= 6  # colours, counts, pairs, both relations, attribution...
    assert (scenes.images[:, 0, 0] > 240).all()  # on white


@needs_font
def test_counted_copies_are_whole_and_apart_and_recoloured_ones_read_as_their_colour(emoji):
    from genimg.evaluate.composition import ink_regions
    from genimg.train.data import find_font
    from genimg.train.scenes import SceneRenderer

    renderer = SceneRenderer(emoji, find_font())
    rng = np.random.default_rng(0)
    for count in (2, 3, 4):
        for _ in range(5):
            image = renderer.draw(Scene((SceneObject("rocket", count=count),)), rng)
            assert len(ink_regions(image)) == count
    blue = renderer.draw(Scene((SceneObject("rocket", "blue"),)), rng)
    assert dominant_colour(blue[(255 - blue.min(-1).astype(int)) > 20]) == "blue"
    assert "red" in renderer.own_colours("rocket")


@needs_font
def test_the_composition_rules_pass_the_rendered_scenes_and_fail_the_wrong_ones(emoji):
    """The oracle (scenes drawn from the font for each prompt) scores near 1; the same images graded against
    another prompt of the same task score near 0: the rules can fail."""
    from genimg.evaluate.composition import GlyphClassifier, composition_prompts, oracle_scene, score
    from genimg.train.scenes import SceneRenderer

    renderer = SceneRenderer(emoji, find_font())
    prompts = composition_prompts(renderer.own_colours)
    assert len(prompts) == 96 and len({p.prompt for p in prompts}) == 96
    rng = np.random.default_rng(0)
    images = [[renderer.draw(oracle_scene(p), rng) for _ in range(2)] for p in prompts]
    classifier = GlyphClassifier(renderer)
    right = score(prompts, images, classifier)
    assert right["overall"] >= 0.95 and min(right["tasks"].values()) >= 0.9
    shifted = [images[i - 1] if prompts[i - 1].task == p.task else images[i + 1] for i, p in enumerate(prompts)]
    wrong = score(prompts, shifted, classifier)
    assert wrong["overall"] <= 0.25


def test_geneval_position_rule():
    from genimg.evaluate.composition import relative_position

    assert relative_position((0, 20, 28, 48), (34, 20, 62, 48)) == {"left of"}
    assert relative_position((20, 0, 48, 28), (20, 34, 48, 62)) == {"above"}
    assert relative_position((10, 10, 40, 40), (12, 12, 42, 42)) == set()  # overlapping: no relation
