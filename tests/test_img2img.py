"""Image to image and negative prompts on the shipped latent models (genimg.backends.latent)."""
from __future__ import annotations

import numpy as np
import pytest

import genimg
from genimg.errors import InvalidRequest, UnsupportedOption

pytestmark = pytest.mark.slow


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=float)


@pytest.fixture(scope="module")
def heart():
    return genimg.load("latent-lcm", device="cpu").generate("red heart", steps=2, seed=1).images[0]


@pytest.mark.parametrize("backend, tiny_decoder, steps", [("latent-lcm", True, 1), ("latent-lcm", False, 2),
                                                          ("latent", False, 4)])
def test_img2img_redraws_the_image_more_as_strength_grows(heart, backend, tiny_decoder, steps):
    generator = genimg.load(backend, device="cpu", tiny_decoder=tiny_decoder)
    light = generator.img2img(heart, "rocket", strength=0.25, steps=steps, seed=0)
    heavy = generator.img2img(heart, "rocket", strength=1.0, steps=steps, seed=0)
    assert light.images[0].size == (64, 64)
    assert {"text_encode", "image_encode", "denoise", "decode", "to_pil", "total"} <= set(light.timings)
    distance = {name: np.abs(pixels(result.images[0]) - pixels(heart)).mean() for name, result in
                (("light", light), ("heavy", heavy))}
    assert distance["light"] < distance["heavy"]
    assert light.info["strength"] == 0.25 and light.info["steps"] == steps
    assert light.info["schedule_steps"] == int(np.ceil(steps / 0.25))


def test_img2img_is_deterministic_for_a_seed_and_reads_files(heart, tmp_path):
    generator = genimg.load("latent-lcm", device="cpu")
    path = tmp_path / "heart.png"
    heart.save(path)
    first = generator.img2img(path, "rocket", strength=0.6, steps=2, seed=3).images[0]
    again = generator.img2img(path.read_bytes(), "rocket", strength=0.6, steps=2, seed=3).images[0]
    assert np.array_equal(pixels(first), pixels(again))


@pytest.mark.parametrize("backend", ["gan", "vae"])
def test_backends_without_an_autoencoder_say_so(heart, backend):
    with pytest.raises(UnsupportedOption, match="latent"):
        genimg.load(backend, device="cpu").img2img(heart, "rocket")


def test_bad_img2img_input_is_refused_before_any_work(heart):
    generator = genimg.load("latent-lcm", device="cpu")
    with pytest.raises(InvalidRequest, match="strength"):
        generator.img2img(heart, "rocket", strength=0)
    with pytest.raises(InvalidRequest, match="not a PNG, JPEG or WebP"):
        generator.img2img(b"GIF89a not really", "rocket")
    with pytest.raises(InvalidRequest, match="prompt is empty"):
        generator.img2img(heart, " ")


def test_a_negative_prompt_steers_the_teacher_at_no_extra_pass():
    teacher = genimg.load("latent", device="cpu", match_concepts=False)
    plain = teacher.generate("red heart", steps=4, seed=2)
    steered = teacher.generate("red heart", steps=4, seed=2, negative_prompt="a red apple")
    assert not np.array_equal(pixels(plain.images[0]), pixels(steered.images[0]))
    assert "negative_prompt" not in plain.info
    info = steered.info["negative_prompt"]
    assert info["used"] and info["extra_unet_passes"] == 0 and info["text"] == "a red apple"
    assert "4 of 4 steps" in info["note"] and info["note"] in steered.info["notes"]


def test_a_negative_prompt_is_ignored_with_a_note_where_nothing_is_guided():
    student = genimg.load("latent-lcm", device="cpu")
    plain = student.generate("red heart", steps=2, seed=2)
    ignored = student.generate("red heart", steps=2, seed=2, negative_prompt="a red apple")
    assert np.array_equal(pixels(plain.images[0]), pixels(ignored.images[0]))
    assert not ignored.info["negative_prompt"]["used"] and "ignored" in ignored.info["negative_prompt"]["note"]
    gan = genimg.load("gan", device="cpu").generate("red heart", negative_prompt="apple")
    assert "ignored" in gan.info["negative_prompt"]["note"]


def test_a_negative_prompt_is_validated_like_the_prompt():
    with pytest.raises(InvalidRequest, match="Negative prompt: .*limit is 1000"):
        genimg.Request("red heart", negative_prompt="x" * 1001).validated()
    assert genimg.Request("red heart", negative_prompt="  ").validated().negative_prompt is None
    assert genimg.Request("red heart", negative_prompt=" a\u202e  b ").validated().negative_prompt == "a b"
