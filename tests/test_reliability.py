"""Reliability under load and bad input in genimg: limits, faults, concurrency, batching (app: test_app_reliability)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import genimg
from genimg import guards
from genimg.serve.batching import MicroBatcher
from genimg.guards import Deadline, check_finite, check_pixel_budget
from genimg.serve.limits import ServingLimits, allowed_model_folders, check_model_source
from genimg.registry import GeneratorCache
from test_diffusers_pipeline import tiny_pipeline_folder  # noqa: F401 - a fixture: a tiny SD pipeline folder

ROOT = Path(__file__).resolve().parents[1]
JOIN_S = 300  # a hang guard for threads, never a speed target


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=int)


@pytest.fixture
def fake_clock(monkeypatch):
    """Deadlines read this clock; tests move it forward instead of sleeping."""
    now = [1000.0]
    monkeypatch.setattr(guards, "monotonic", lambda: now[0])
    return now


# --- limits, without models -------------------------------------------------------------------------------------

def test_pixel_budget_allows_the_embedded_batches_and_caps_big_images():
    check_pixel_budget(16, (64, 64))
    check_pixel_budget(4, (512, 512))
    with pytest.raises(genimg.RequestTooLarge, match="at most 4 images"):
        check_pixel_budget(5, (512, 512))
    with pytest.raises(genimg.RequestTooLarge, match="at most 1 image at a time"):
        check_pixel_budget(2, (1024, 1024))


@pytest.mark.parametrize("timeout_s", [0, -1, "5", True])
def test_a_bad_timeout_is_refused(timeout_s):
    with pytest.raises(genimg.InvalidRequest, match="timeout_s"):
        Deadline(timeout_s)


def test_deadline_checks_between_steps_then_calls_on_step(fake_clock):
    assert Deadline(None).wrap(None) is None
    seen = []
    on_step = Deadline(10).wrap(lambda done, total: seen.append(done))
    on_step(1, 4)
    fake_clock[0] += 11
    with pytest.raises(genimg.GenerationTimeout, match=r"limit of 10 s.*step 2 of 4"):
        on_step(2, 4)
    assert seen == [1]


def test_serving_limits_come_from_the_environment():
    assert ServingLimits.from_env({}) == ServingLimits()
    assert ServingLimits.from_env({"GENIMG_REQUEST_TIMEOUT_S": "2.5", "GENIMG_QUEUE_SIZE": "3",
                                   "GENIMG_MAX_BATCH": "1"}) == ServingLimits(2.5, 3, 1)
    assert ServingLimits.from_env({"GENIMG_BATCHING": "gradio"}).batching == "gradio"
    for bad in ({"GENIMG_QUEUE_SIZE": "many"}, {"GENIMG_MAX_BATCH": "0"}, {"GENIMG_BATCHING": "threads"}):
        with pytest.raises(genimg.InvalidRequest, match="GENIMG_"):
            ServingLimits.from_env(bad)


def test_non_finite_images_are_an_error():
    check_finite(torch.zeros(2, 3, 4, 4))
    images = torch.zeros(3, 3, 4, 4)
    images[1, 0, 0, 0] = float("nan")
    images[2, 1, 2, 2] = float("inf")
    with pytest.raises(genimg.NonFiniteOutput, match="2 of 3 images.*fp32"):
        check_finite(images)


def test_out_of_memory_empties_the_cache_and_asks_for_a_smaller_batch(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))

    def runs_out():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(genimg.OutOfMemory, match="batch smaller than 8"):
        guards.call_freeing_memory_on_oom(runs_out, batch_size=8)
    assert emptied
    with pytest.raises(RuntimeError, match="something else"):  # other errors pass through untouched
        guards.call_freeing_memory_on_oom(lambda: (_ for _ in ()).throw(RuntimeError("something else")), 1)


@pytest.mark.parametrize("model", ["/etc", "/etc/passwd", "../..", "..", "~", "assets/../..", "a/b/c"])
def test_model_paths_outside_the_allowed_folders_are_refused(model, tmp_path):
    with pytest.raises(genimg.InvalidRequest, match="not inside a model folder"):
        check_model_source(model, [tmp_path])


def test_hub_ids_and_folders_inside_allowed_ones_pass(tmp_path, monkeypatch):
    assert check_model_source("stabilityai/sd-turbo", [tmp_path]) == "stabilityai/sd-turbo"
    (tmp_path / "pipelines" / "mine").mkdir(parents=True)
    mine = tmp_path / "pipelines" / "mine"
    assert check_model_source(str(mine), [tmp_path]) == str(mine.resolve())
    # A symlink inside an allowed folder that points outside it is outside.
    (tmp_path / "escape").symlink_to("/etc")
    with pytest.raises(genimg.InvalidRequest):
        check_model_source(str(tmp_path / "escape"), [tmp_path])
    # "owner/name" that exists on disk is a path, judged as one.
    monkeypatch.chdir("/")
    with pytest.raises(genimg.InvalidRequest):
        check_model_source("etc/passwd", [tmp_path])
    other = tmp_path.parent / "other-models"
    monkeypatch.setenv("GENIMG_MODEL_DIRS", f"{other}{os.pathsep}/nonexistent")
    folders = allowed_model_folders(ROOT / "assets")
    assert folders[0] == ROOT / "assets" and other in folders
    assert check_model_source(str(other / "x"), folders) == str((other / "x").resolve())


# --- the registry ------------------------------------------------------------------------------------------------

def test_a_failing_load_is_reported_not_cached_and_other_backends_keep_loading(monkeypatch):
    import genimg.backends.gan as gan
    import genimg.backends.vae as vae

    cache = GeneratorCache()
    loaded = []
    monkeypatch.setattr(gan, "load", lambda options, model=None: loaded.append("gan") or object())
    monkeypatch.setattr(vae, "load", lambda options, model=None: (_ for _ in ()).throw(OSError("corrupt weights")))
    options = genimg.SpeedOptions(device="cpu")
    with pytest.raises(genimg.ModelLoadError, match=r"'vae' backend \(OSError: corrupt weights\)"):
        cache.get("vae", options)
    assert cache.get("gan", options) is cache.get("gan", options) and loaded == ["gan"]
    monkeypatch.setattr(vae, "load", lambda options, model=None: "vae loaded")
    assert cache.get("vae", options) == "vae loaded"  # the failure was not cached


def test_a_slow_load_blocks_neither_loaded_backends_nor_loads_twice(monkeypatch):
    import genimg.backends.gan as gan
    import genimg.backends.vae as vae

    cache, release, loads = GeneratorCache(), threading.Event(), []
    monkeypatch.setattr(gan, "load", lambda options, model=None: "gan")

    def slow_vae(options, model=None):
        loads.append(1)
        release.wait(JOIN_S)
        return "vae"

    monkeypatch.setattr(vae, "load", slow_vae)
    options = genimg.SpeedOptions(device="cpu")
    cache.get("gan", options)
    results = []
    waiting = [threading.Thread(target=lambda: results.append(cache.get("vae", options))) for _ in range(3)]
    for thread in waiting:
        thread.start()
    assert cache.get("gan", options) == "gan"  # served while vae is loading
    release.set()
    for thread in waiting:
        thread.join(JOIN_S)
    assert results == ["vae"] * 3 and loads == [1]


# --- generators: faults, timeouts, concurrency, batching ----------------------------------------------------------

@pytest.fixture(scope="module")
def gan():
    return genimg.load("gan", device="cpu")


@pytest.fixture(scope="module")
def lcm():
    return genimg.load("latent-lcm", device="cpu")


@pytest.mark.slow
def test_out_of_memory_in_generate_is_a_clear_error_and_the_generator_recovers(gan, monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))

    def runs_out(*_):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with monkeypatch.context() as patch:
        patch.setattr(gan, "_generate", runs_out)
        with pytest.raises(genimg.OutOfMemory, match="lower|smaller than 4"):
            gan.generate("red heart", batch_size=4)
    assert emptied and not gan.lock.locked()
    assert len(gan.generate("red heart", batch_size=4).images) == 4


class NaNModel(torch.nn.Module):
    """The real GAN generator with its output poisoned, as an fp16 overflow would."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def forward(self, *inputs):
        return self.model(*inputs) * float("nan")


@pytest.mark.slow
def test_a_model_returning_nan_is_reported(gan, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(gan, "model", NaNModel(gan.model))
        with pytest.raises(genimg.NonFiniteOutput, match="NaN or infinite values in 2 of 2 images"):
            gan.generate("rocket", batch_size=2)
    assert len(gan.generate("rocket").images) == 1


@pytest.mark.slow
def test_pixel_budget_is_checked_before_generating(gan, monkeypatch):
    monkeypatch.setattr(gan, "image_size", (512, 512))
    with pytest.raises(genimg.RequestTooLarge, match="at most 4 images"):
        gan.generate("rocket", batch_size=5)
    with pytest.raises(genimg.RequestTooLarge):
        gan.generate_batch(["rocket"] * 5, list(range(5)))


@pytest.mark.slow
def test_timeout_stops_between_denoising_steps_and_the_generator_recovers(lcm, fake_clock):
    def slow_step(done, total):
        fake_clock[0] += 101

    with pytest.raises(genimg.GenerationTimeout, match="step 2 of 4"):
        lcm.generate("red heart", steps=4, timeout_s=100, on_step=slow_step)
    assert not lcm.lock.locked()
    assert len(lcm.generate("red heart", steps=2, timeout_s=100).images) == 1


@pytest.mark.slow
def test_timeout_counts_the_wait_for_a_busy_device(gan, fake_clock):
    errors = []

    def request():
        try:
            gan.generate("rocket", timeout_s=30)
        except genimg.GenerationTimeout as error:
            errors.append(str(error))

    with gan.lock:  # another request holds the device
        thread = threading.Thread(target=request)
        thread.start()
        fake_clock[0] += 31
    thread.join(JOIN_S)
    assert errors and "waiting for the device" in errors[0]


@pytest.mark.slow
def test_too_many_steps_for_the_distilled_scheduler_is_a_clear_error(lcm):
    with pytest.raises(genimg.InvalidRequest, match="at most 50 steps"):
        lcm.generate("red heart", steps=60)


@pytest.mark.slow
def test_bad_requests_are_refused_with_messages(gan):
    for arguments, message in [(dict(prompt=" \u202e\x00 "), "empty"), (dict(steps="4"), "steps"),
                               (dict(batch_size=17), "batch_size"), (dict(seed=-1), "seed"),
                               (dict(seed=2.5), "seed"), (dict(timeout_s=-1), "timeout_s")]:
        with pytest.raises(genimg.InvalidRequest, match=message):
            gan.generate(**{"prompt": "rocket", **arguments})
    for prompts, seeds in [([], []), (["a"], [1, 2]), (["a"] * 17, list(range(17))), (["a", " "], [1, 2])]:
        with pytest.raises(genimg.InvalidRequest):
            gan.generate_batch(prompts, seeds)


@pytest.mark.slow
def test_long_prompts_are_truncated_with_a_note(gan):
    result = gan.generate("a very long description of a small red heart " * 8)
    assert any("truncated" in note for note in result.info["notes"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["gan", "latent-lcm"])
def test_concurrent_generate_calls_give_the_images_of_sequential_ones(backend):
    generator = genimg.load(backend, device="cpu")
    requests = [(prompt, seed) for seed, prompt in enumerate(["red heart", "rocket", "dog face", "a cat"] * 2)]
    sequential = [generator.generate(prompt, steps=2 if backend != "gan" else None, seed=seed).images[0]
                  for prompt, seed in requests]
    concurrent = [None] * len(requests)

    def run(index):
        prompt, seed = requests[index]
        concurrent[index] = generator.generate(prompt, steps=2 if backend != "gan" else None, seed=seed).images[0]

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_S)
    for expected, image in zip(sequential, concurrent):
        assert np.array_equal(pixels(expected), pixels(image))


@pytest.mark.slow
@pytest.mark.parametrize("backend, steps", [("gan", None), ("latent-lcm", 1), ("latent-lcm", 2)])
def test_a_batch_of_requests_gives_each_request_its_own_image(backend, steps):
    """LCM beyond one step draws noise between steps: one generator per image keeps a batch exact, so it batches."""
    generator = genimg.load(backend, device="cpu")
    prompts, seeds = ["red heart", "rocket", "dog face"], [5, 6, 7]
    batch = generator.generate_batch(prompts, seeds, steps=steps)
    assert [result.info["prompt"] for result in batch] == prompts
    assert [result.info["seed"] for result in batch] == seeds
    assert [result.info["batched_with"] for result in batch] == [3] * 3
    for prompt, seed, result in zip(prompts, seeds, batch):
        alone = generator.generate(prompt, steps=steps, seed=seed).images[0]
        # The same noise and prompt; a batch of three may round a few pixels differently.
        assert np.abs(pixels(result.images[0]) - pixels(alone)).max() <= 2
    assert np.abs(pixels(batch[0].images[0]) - pixels(batch[1].images[0])).mean() > 10


@pytest.mark.slow
def test_a_diffusers_pipeline_batches_requests_and_knows_its_image_size(tiny_pipeline_folder):
    generator = genimg.load("latent", device="cpu", model=str(tiny_pipeline_folder))
    assert generator.image_size == (32, 32)
    prompts, seeds = ["a cat", "a red dog"], [1, 2]
    for prompt, seed, result in zip(prompts, seeds, generator.generate_batch(prompts, seeds, steps=2)):
        assert result.info["prompt"] == prompt and result.info["batched_with"] == 2
        alone = generator.generate(prompt, steps=2, seed=seed).images[0]
        assert np.abs(pixels(result.images[0]) - pixels(alone)).max() <= 2
    assert any("truncated" in note for note in generator.generate("a cat " * 40, steps=1).info["notes"])


def test_step_generators_give_each_image_of_a_batch_its_own_seed():
    from genimg.backends.base import ImageSeeds, step_generators

    lone = torch.randn(1, 4, generator=step_generators(7))
    per_image = step_generators(ImageSeeds([3, 7]))
    assert len(per_image) == 2 and torch.equal(torch.randn(1, 4, generator=per_image[1]), lone)
    # CPU generators whatever the model's device: a CUDA generator draws another sequence (the GPU check's LCM rows)
    assert {generator.device.type for generator in [step_generators(7), *per_image]} == {"cpu"}
    assert ImageSeeds([3, 7]) == 3 and ImageSeeds([3, 7]).seeds == (3, 7)


def wait_until(condition) -> None:
    for _ in range(JOIN_S * 100):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition never met")


@pytest.mark.slow
def test_micro_batcher_batches_waiting_requests_and_fails_bad_ones_alone(gan):
    batcher = MicroBatcher(gan, max_batch_size=8)
    prompts = ["red heart", "rocket", "  ", "dog face", "a cat", "frog"]
    results, errors = {}, {}

    def request(index):
        try:
            results[index] = batcher.generate(prompts[index], seed=index)
        except genimg.GenimgError as error:
            errors[index] = str(error)

    threads = [threading.Thread(target=request, args=(index,)) for index in range(len(prompts))]
    with gan.lock:  # the device is busy with the first request; the others queue up behind it
        threads[0].start()
        wait_until(lambda: batcher._working and not batcher._pending)
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: len(batcher._pending) == 4 and len(errors) == 1)
    for thread in threads:
        thread.join(JOIN_S)
    assert list(errors) == [2] and "empty" in errors[2]  # the bad request failed alone, before the queue
    assert [results[index].info["batched_with"] for index in (0, 1, 3, 4, 5)] == [1, 4, 4, 4, 4]
    for index, result in results.items():
        assert result.info["prompt"] == prompts[index] and result.info["seed"] == index
        alone = gan.generate(prompts[index], seed=index).images[0]
        assert np.abs(pixels(result.images[0]) - pixels(alone)).max() <= 2


@pytest.mark.slow
def test_back_to_back_requests_run_on_one_worker_thread_which_ends_when_idle(gan):
    batcher = MicroBatcher(gan, max_batch_size=8, idle_s=1.0)
    threads = []
    original = gan.generate_batch

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return original(*args, **kwargs)

    gan.generate_batch = recording
    try:
        for seed in range(3):
            batcher.generate("red heart", seed=seed)
        assert len(threads) == 3 and len(set(threads)) == 1  # one thread, one warm OpenMP pool
        wait_until(lambda: not batcher._working)  # idle past idle_s: the worker is gone
        threads[0].join(JOIN_S)
        assert not threads[0].is_alive()
        batcher.generate("red heart", seed=9)  # and a new one starts for the next request
        assert threads[-1] is not threads[0]
    finally:
        gan.generate_batch = original


# --- the command line --------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("arguments, message", [
    (["--batch-size", "0"], "batch_size must be between 1 and 16"),
    (["--steps", "2.5"], "invalid int value"),
    (["--backend", "nope"], "invalid choice"),
    (["--steps", "60", "--backend", "latent-lcm"], "at most 50 steps"),
])
def test_cli_refuses_bad_numbers_with_a_message_and_no_traceback(arguments, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "genimg", "generate", "rocket", *arguments, "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_model_on_a_backend_that_cannot_run_it_is_refused_not_ignored():
    with pytest.raises(genimg.InvalidRequest, match="runs on the 'latent' backend"):
        genimg.load("latent-lcm", device="cpu", model="owner/name")
