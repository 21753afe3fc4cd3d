"""Scenes: canonical captions, and what the parser makes of what users type (snapping stubbed by a word table)."""
import pytest

from genimg.concepts import ConceptMatch
from genimg.scene import Scene, SceneObject, plural
from genimg.scene_parser import is_compositional, parse, read_phrase, split_prompt

# phrase -> (emoji name, similarity) for the stub matcher; anything else snaps weakly to "ghost"
NAMES = {"rocket": "rocket", "car": "automobile", "red car": "automobile", "star": "star", "crown": "crown",
         "bird": "bird", "dog": "dog", "cute puppy": "dog", "kitten": "cat", "key": "key", "tree": "deciduous tree",
         "apple": "red apple", "red apple": "red apple", "fork and knife": "fork and knife", "cat": "cat"}
OWN_CAPTIONS = {"red car", "red apple", "fork and knife"}  # captions that are a name or an alias themselves


def stub_match(texts):
    matches = []
    for text in texts:
        key = text.removeprefix("a ").removeprefix("an ")
        exact = key in OWN_CAPTIONS or key in NAMES.values()
        name = NAMES.get(key, "ghost")
        matches.append(ConceptMatch(text, name, key if exact else name, 1.0 if exact else 0.6))
    return matches


def caption(prompt):
    scene = parse(prompt, stub_match)
    return None if scene is None else scene.caption()


def test_plurals_take_the_head_noun():
    assert [plural(n) for n in ("star", "slice of pizza", "box", "cherry", "key", "snowman", "fish", "bus")] == [
        "stars", "slices of pizza", "boxes", "cherries", "keys", "snowmen", "fish", "buses"]


def test_canonical_captions_turn_right_and_below_around():
    rocket, car = SceneObject("rocket", "blue"), SceneObject("automobile")
    assert Scene.related(rocket, "below", car).caption() == "an automobile above a blue rocket"
    assert Scene.related(rocket, "right of", car).caption() == "an automobile to the left of a blue rocket"
    assert Scene.related(rocket, None, car).caption() == "a blue rocket and an automobile"
    assert Scene((SceneObject("star", count=3, colour="pink"),)).caption() == "three pink stars"
    assert Scene((SceneObject("rocket", small=True),)).caption() == "a small rocket"
    assert Scene((SceneObject("rocket"),)).caption() == "rocket"  # a plain emoji is drawn by its name, as before


def test_scene_objects_refuse_what_the_models_cannot_draw():
    with pytest.raises(ValueError, match="colour"):
        SceneObject("rocket", "beige")
    with pytest.raises(ValueError, match="count"):
        SceneObject("star", count=5)
    with pytest.raises(ValueError, match="relation"):
        Scene((SceneObject("rocket"), SceneObject("star")), "inside")


def test_the_parser_reads_colours_counts_sizes_and_relations():
    assert caption("a blue rocket above a red car") == "a blue rocket above an automobile"
    assert caption("A rocket to the right of a car.") == "an automobile to the left of a rocket"
    assert caption("a crown below a bird") == "a bird above a crown"
    assert caption("two stars") == "two stars"
    assert caption("a photo of 3 blue stars") == "three blue stars"
    assert caption("a tiny rocket") == "a small rocket"
    assert caption("a cute puppy next to a kitten") == "a dog and a cat"
    assert caption("a purple dog and a green key") == "a purple dog and a green key"


def test_a_colour_that_is_part_of_a_name_stays_in_the_name():
    assert caption("a red apple") is None  # the whole prompt names an emoji: concept matching alone
    assert caption("one rocket") is None
    assert caption("a blue apple") == "a blue red apple"  # "apple" snaps to red apple, recoloured


def test_prompts_without_scene_words_are_not_parsed():
    calls = []
    assert parse("a cute puppy", lambda texts: calls.append(texts) or stub_match(texts)) is None
    assert calls == []  # no extra text pass: today's path and speed
    assert not is_compositional("a slice of pizza")
    assert caption("fork and knife") is None  # "and" inside an emoji's own name
    assert caption("two") is None and caption("a blue") is None  # no object named: the nearest emoji, as before
    # "with" describes one thing; "black and white" names none on one side of "and"
    assert caption("a birthday cake with candles") is None
    assert caption("a black and white football") is None


def test_what_cannot_be_drawn_is_reported_not_dropped_silently():
    scene = parse("five stars", stub_match)
    assert scene.caption() == "four stars" and any("five" in note for note in scene.unplaced)
    scene = parse("a dog and a cat to the left of a key and a tree", stub_match)
    assert scene.caption() == "a cat to the left of a key"
    assert any("dog" in note for note in scene.unplaced) and any("tree" in note for note in scene.unplaced)
    scene = parse("two dogs and a key", stub_match)
    assert scene.caption() == "a dog and a key" and any("two" in note for note in scene.unplaced)
    assert any("black" in note for note in parse("a black rocket and a key", stub_match).unplaced)


def test_phrases_and_splits():
    assert read_phrase("two small blue stars").count == 2
    assert read_phrase("two small blue stars").words == "star"
    assert split_prompt("a smiling face with sunglasses left of a dog") == (
        ["a smiling face with sunglasses", "a dog"], "left of", [])


def test_generators_draw_the_scene_and_say_what_they_understood():
    import genimg

    generator = genimg.load("gan")
    result = generator.generate("a blue rocket above a red car and a tree", seed=0)
    drawn = result.info["drawn_as"]
    assert drawn["concept"] == drawn["scene"]["caption"]
    assert [obj["name"] for obj in drawn["scene"]["objects"]] == ["rocket", "automobile"]
    assert drawn["scene"]["objects"][0]["colour"] == "blue"
    assert any(note.startswith("Not drawn:") and "tree" in note for note in result.info["notes"])
    plain = generator.generate("a slice of pizza", seed=0).info["drawn_as"]
    assert "scene" not in plain and plain["concept"] == "pizza"


def test_the_layout_puts_every_copy_whole_and_apart_and_relations_where_they_say():
    import numpy as np

    from genimg.scene import CANVAS, copies, layout

    for scene in (Scene((SceneObject("star", count=3),)), Scene((SceneObject("star", count=4),)),
                  Scene.related(SceneObject("crown"), "below", SceneObject("bird")),
                  Scene.related(SceneObject("dog"), "right of", SceneObject("key")),
                  Scene((SceneObject("cat", small=True),))):
        for seed in range(20):
            slots = layout(scene, np.random.default_rng(seed))
            assert len(slots) == len(copies(scene))
            boxes = [(x, y, x + size, y + size) for x, y, size in slots]
            assert all(0 <= x0 and 0 <= y0 and x1 <= CANVAS and y1 <= CANVAS for x0, y0, x1, y1 in boxes)
            assert all(a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]  # no two overlap
                       for i, a in enumerate(boxes) for b in boxes[i + 1:])
            if scene.relation == "above":  # the bird (first, turned around from "crown below bird") on top
                assert boxes[0][3] <= boxes[1][1]
            if scene.relation == "left of":
                assert boxes[0][2] <= boxes[1][0]
    assert not Scene((SceneObject("rocket", "blue"),)).arranged and Scene((SceneObject("star", count=2),)).arranged


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["gan", "latent-lcm"])
def test_layout_draws_each_object_alone_and_arranges_them_and_can_be_turned_off(backend):
    import numpy as np

    import genimg
    from genimg.errors import InvalidRequest

    generator = genimg.load(backend, tiny_decoder=backend.startswith("latent"))
    prompt = "a purple dog to the right of a green key"
    result = generator.generate(prompt, batch_size=2, seed=3, steps=2 if backend != "gan" else None)
    arranged = result.info["layout"]
    assert arranged["objects"] == ["a green key", "a purple dog"]  # turned around: the key stands left
    assert len(arranged["slots"]) == 2  # one list of slots per image
    (x0, _, size0), (x1, _, _) = arranged["slots"][0]
    assert x0 + size0 <= x1 and "layout_objects" in result.timings and "layout_arrange" in result.timings
    pixels = np.asarray(result.images[0].convert("RGB"), dtype=float)
    outside = np.ones(pixels.shape[:2], bool)
    for x, y, size in arranged["slots"][0]:
        outside[y:y + size, x:x + size] = False
        assert pixels[y:y + size, x:x + size].std() > 10  # each slot holds a drawing ...
    assert pixels[outside].min() > 250  # ... on a white canvas
    again = generator.generate(prompt, batch_size=2, seed=3, steps=2 if backend != "gan" else None)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(result.images, again.images))
    itself = generator.generate(prompt, batch_size=2, seed=3, layout=False, steps=2 if backend != "gan" else None)
    assert "layout" not in itself.info and "layout_objects" not in itself.timings
    assert "layout" not in generator.generate("a blue rocket", seed=3).info  # one whole object: drawn whole
    batched = generator.generate_batch([prompt, "rocket"], [3, 4], steps=2 if backend != "gan" else None)
    alone = generator.generate(prompt, seed=3, steps=2 if backend != "gan" else None)
    assert np.array_equal(np.asarray(batched[0].images[0]), np.asarray(alone.images[0]))
    assert "layout" in batched[0].info and "layout" not in batched[1].info
    lone = generator.generate_batch([prompt], [3], steps=2 if backend != "gan" else None)[0]  # POST /v1/image's path
    assert np.array_equal(np.asarray(lone.images[0]), np.asarray(alone.images[0])) and "layout" in lone.info
    with pytest.raises(InvalidRequest, match="layout must be True or False"):
        generator.generate(prompt, layout="yes")


@pytest.mark.slow
def test_the_judge_scores_an_arranged_scene_object_by_object():
    import genimg
    from genimg.evaluate.judge import default_judge

    generator = genimg.load("gan", upscale=2)
    result = generator.generate("a crown below a bird", batch_size=3, seed=0, best_of=2)
    arranged = result.info["layout"]
    assert len(arranged["slots"]) == 3 and result.images[0].width == 128  # the kept candidates' slots, 2x images
    by_object = default_judge().score_layout(result.images, arranged)
    whole = default_judge().score(result.images, result.info["drawn_as"]["concept"])
    assert len(by_object) == 3 and min(by_object) > 20 and sum(by_object) > sum(whole)
