"""The public API on the shipped models: images, timings, determinism, errors."""
import numpy as np
import pytest

import genimg

STAGES = {"gan": "generate", "vae": "decode", "latent": "denoise", "latent-lcm": "denoise"}
FAST_STEPS = {"latent": 3, "latent-lcm": 2}


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(STAGES))
def test_generate_returns_images_and_stage_timings(backend):
    generator = genimg.load(backend, device="cpu")
    result = generator.generate("red heart", steps=FAST_STEPS.get(backend), batch_size=2, seed=3)
    assert len(result.images) == 2
    assert result.images[0].size == (64, 64) and result.images[0].mode == "RGB"
    assert {"text_encode", STAGES[backend], "total"} <= set(result.timings)
    assert result.timings["total"] >= result.timings[STAGES[backend]] > 0
    if backend.startswith("latent"):
        assert result.timings["decode"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(STAGES))
def test_same_seed_same_images_other_seed_other_images(backend):
    generator = genimg.load(backend, device="cpu")
    steps = FAST_STEPS.get(backend)
    first = generator.generate("rocket", steps=steps, seed=11).images[0]
    again = generator.generate("rocket", steps=steps, seed=11).images[0]
    other = generator.generate("rocket", steps=steps, seed=12).images[0]
    assert np.array_equal(np.asarray(first), np.asarray(again))
    if backend != "latent-lcm":  # the distilled model is nearly deterministic in the caption, by design
        assert not np.array_equal(np.asarray(first), np.asarray(other))


@pytest.mark.slow
def test_images_depend_on_the_prompt():
    generator = genimg.load("latent-lcm", device="cpu")
    heart = np.asarray(generator.generate("red heart", steps=2).images[0], dtype=float)
    frog = np.asarray(generator.generate("frog", steps=2).images[0], dtype=float)
    assert np.abs(heart - frog).mean() > 10


@pytest.mark.slow
def test_bf16_runs_on_cpu_and_load_is_cached():
    generator = genimg.load("gan", device="cpu", precision="bf16")
    assert genimg.load("gan", device="cpu", precision="bf16") is generator
    assert generator.generate("a cat").images[0].size == (64, 64)


def test_bad_backend_and_options_are_refused_before_loading():
    with pytest.raises(genimg.InvalidRequest, match="backend"):
        genimg.load("diffusion-9000")
    with pytest.raises(genimg.InvalidRequest, match="speed option"):
        genimg.load("gan", warp_speed=True)
    with pytest.raises(genimg.UnsupportedOption, match="bf16"):
        genimg.load("gan", device="cpu", precision="fp16")


@pytest.mark.slow
def test_bad_request_raises_a_clear_error_and_the_generator_still_works():
    generator = genimg.load("gan", device="cpu")
    with pytest.raises(genimg.InvalidRequest, match="empty"):
        generator.generate("   ")
    with pytest.raises(genimg.InvalidRequest, match="batch_size"):
        generator.generate("a cat", batch_size=1000)
    assert len(generator.generate("a cat").images) == 1


@pytest.mark.slow
def test_unknown_scheduler_is_refused():
    with pytest.raises(genimg.InvalidRequest, match="scheduler"):
        genimg.load("latent", device="cpu", scheduler="warp")


def test_best_of_keeps_the_candidate_the_judge_scores_highest_and_times_the_whole_cost():
    import genimg

    generator = genimg.load("gan")
    result = generator.generate("a blue rocket", batch_size=2, seed=5, best_of=3)
    chosen = result.info["best_of"]
    assert len(result.images) == 2 and chosen["candidates"] == 3 and "best_of" in result.timings
    # The candidates are the plain batch of six drawn with the same seed; each image is its group's best.
    candidates = generator.generate("a blue rocket", batch_size=6, seed=5).images
    for image, kept, scores in zip(result.images, chosen["kept"], chosen["judge_scores"]):
        assert scores[kept] == max(scores)
    assert [list(image.getdata()) for image in result.images] == [
        list(candidates[3 * group + kept].getdata()) for group, kept in enumerate(chosen["kept"])]
    assert "best_of" not in generator.generate("a blue rocket", seed=5).info
    with pytest.raises(genimg.InvalidRequest, match="best_of"):
        generator.generate("a blue rocket", best_of=0)
