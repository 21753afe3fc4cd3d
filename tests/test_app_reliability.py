"""The launched app under bad input, faults and load: clear errors, a full queue, disconnects, files, batching."""
from __future__ import annotations

import dataclasses
import json
import socket
import threading
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image


pytestmark = pytest.mark.slow
JOIN_S = 300  # a hang guard, never a speed target
REQUEST = dict(prompt="grinning face", backend="gan", steps=0, batch_size=1, precision="fp32", seed=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(app, **limits):
    """A fresh app on a free loopback port, with some serving limits changed."""
    app.LIMITS = dataclasses.replace(app.LIMITS, **limits)
    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                           quiet=True)
    return demo, url


@pytest.fixture(scope="module")
def app_module():
    import app

    original = app.LIMITS
    yield app
    app.LIMITS = original


@pytest.fixture(scope="module")
def served(app_module):
    demo, url = launch(app_module)
    yield demo, url
    demo.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served[1], verbose=False)


def image_of(gallery_or_path) -> np.ndarray:
    path = gallery_or_path[0]["image"] if isinstance(gallery_or_path, list) else gallery_or_path
    return np.asarray(Image.open(path["path"] if isinstance(path, dict) else path).convert("RGB"), dtype=int)


@pytest.mark.parametrize("path", ["/gradio_api/file=/etc/passwd", "/file=/etc/passwd",
                                  "/gradio_api/file=../../etc/passwd", "/gradio_api/file=%2Fetc%2Fpasswd",
                                  "/gradio_api/file={root}/app.py",
                                  "/gradio_api/file={root}/assets/models/gan/config.json", "/file={root}/app.py"])
def test_no_file_outside_the_apps_own_folders_can_be_read(served, path):
    root = Path(__file__).resolve().parents[1]
    response = httpx.get(served[1].rstrip("/") + path.format(root=root))
    assert response.status_code in (403, 404)
    assert "root:" not in response.text and "import" not in response.text and "z_dim" not in response.text


@pytest.mark.parametrize("arguments, message", [
    (dict(steps="abc"), "Steps must be a number, got 'abc'"),
    (dict(seed="x"), "Seed must be a number"),
    (dict(batch_size=None), "Batch size must be a number, got None"),
    (dict(steps=2.5), "steps must be a whole number"),
    (dict(seed=-5), "less than minimum value 0"),
    (dict(backend="nope"), "not in the list of choices"),
    (dict(precision="fp64"), "not in the list of choices"),
    (dict(prompt=None), "prompt must be text"),
    (dict(backend="latent-lcm", steps=60), "at most 50 steps"),
    (dict(backend="latent", model="/etc"), "not inside a model folder"),
    (dict(backend="latent", model="../.."), "not inside a model folder"),
    (dict(backend="latent", model="~/.ssh"), "not inside a model folder"),
])
def test_bad_input_gets_a_clear_message_not_a_stack_trace(client, arguments, message):
    with pytest.raises(Exception, match=message) as caught:
        client.predict(**{**REQUEST, **arguments}, api_name="/generate")
    assert "Traceback" not in str(caught.value) and "verbose error reporting" not in str(caught.value)


def test_a_model_folder_named_in_genimg_model_dirs_passes_the_folder_check(client, tmp_path, monkeypatch):
    monkeypatch.setenv("GENIMG_MODEL_DIRS", str(tmp_path))
    (tmp_path / "not-a-pipeline").mkdir()
    with pytest.raises(Exception, match="Could not load the diffusers pipeline") as caught:
        client.predict(**{**REQUEST, "backend": "latent", "model": str(tmp_path / "not-a-pipeline")},
                       api_name="/generate")
    assert "not inside a model folder" not in str(caught.value)


def test_a_long_prompt_is_truncated_and_the_page_says_so(client):
    _, latency = client.predict(**{**REQUEST, "prompt": "a small red heart with a golden ribbon " * 10},
                                api_name="/generate")
    assert "truncated" in latency


def test_a_request_past_its_time_limit_gets_a_clear_error(client, monkeypatch):
    from ui import common  # run_generation reads the limits there at each call

    monkeypatch.setattr(common, "LIMITS", dataclasses.replace(common.LIMITS, request_timeout_s=1e-9))
    with pytest.raises(Exception, match="ran past the limit"):
        client.predict(**{**REQUEST, "backend": "latent-lcm", "steps": 2}, api_name="/generate")
    monkeypatch.undo()
    assert client.predict(**REQUEST, api_name="/generate")[0]


def test_a_failing_model_load_leaves_the_other_backends_serving(client, monkeypatch):
    import genimg.backends.vae as vae

    real_load = vae.load
    monkeypatch.setattr(vae, "load", lambda options, model=None: (_ for _ in ()).throw(OSError("disk on fire")))
    with pytest.raises(Exception, match="Could not load the 'vae' backend"):
        client.predict(**{**REQUEST, "backend": "vae", "precision": "bf16"}, api_name="/generate")
    assert client.predict(**REQUEST, api_name="/generate")[0]
    monkeypatch.setattr(vae, "load", real_load)
    assert client.predict(**{**REQUEST, "backend": "vae", "precision": "bf16"}, api_name="/generate")[0]


def test_one_image_requests_are_batched_and_each_gets_its_own_image(client):
    results, errors = {}, {}
    prompts = ["red heart", "rocket", " ", "dog face", "frog", "a cat"]

    def request(index):
        try:
            results[index] = client.predict(prompts[index], "gan", 0, "fp32", index, api_name="/generate_one")
        except Exception as error:  # noqa: BLE001
            errors[index] = str(error)

    threads = [threading.Thread(target=request, args=(index,)) for index in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_S)
    assert list(errors) == [2] and "prompt is empty" in errors[2]
    for index, (image, info) in results.items():
        assert info["prompt"] == prompts[index] and info["seed"] == index and info["batched_with"] >= 1
        assert info["server_ms"] >= info["timings_ms"]["total"] > 0  # waiting for the batch counts in the server
        assert info["queue_ms"] >= 0 and info["server_total_ms"] == pytest.approx(info["queue_ms"] + info["server_ms"])
        alone, _ = client.predict(prompts[index], "gan", 0, 1, "fp32", index, upscale=False,  # 64 px, as /generate_one
                                  api_name="/generate")
        assert np.abs(image_of(image) - image_of(alone)).max() <= 2


def test_gradio_batching_serves_each_request_its_own_image(app_module):
    """GENIMG_BATCHING=gradio: the queue hands the function several requests at once (batch=True)."""
    from gradio_client import Client

    demo, url = launch(app_module, batching="gradio", max_batch_size=4)
    try:
        client, results = Client(url, verbose=False), {}
        prompts = ["red heart", "rocket", "dog face", "frog"]
        threads = [threading.Thread(target=lambda i=i: results.update(
            {i: client.predict(prompts[i], "gan", 0, "fp32", i, api_name="/generate_one")})) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOIN_S)
        assert sorted(results) == [0, 1, 2, 3]
        for index, (image, info) in results.items():
            assert info["prompt"] == prompts[index] and info["seed"] == index and 1 <= info["batched_with"] <= 4
            assert info["server_ms"] >= info["timings_ms"]["total"] > 0
            alone, _ = client.predict(prompts[index], "gan", 0, 1, "fp32", index, upscale=False,  # 64 px
                                      api_name="/generate")
            assert np.abs(image_of(image) - image_of(alone)).max() <= 2
    finally:
        demo.close()
        app_module.LIMITS = dataclasses.replace(app_module.LIMITS, batching="genimg", max_batch_size=8)


def wait_until(condition) -> None:
    for _ in range(JOIN_S * 100):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition never met")


def test_a_full_queue_tells_the_client_the_server_is_busy(app_module):
    from gradio_client import Client
    from gradio_client.utils import Status

    demo, url = launch(app_module, queue_size=1)
    client = Client(url, verbose=False)
    # The generator the app loads for REQUEST, with the page's defaults (the 2x upscaler on): the app's own loader.
    device, _ = app_module.load_generator("gan", "fp32", upscale=True)
    client.predict(**REQUEST, api_name="/generate")  # loaded and warmed up
    jobs, refused = [], []
    with device.lock:  # the device is busy: requests wait until the queue holds queue_size of them
        for seed in range(12):
            job = client.submit(**{**REQUEST, "seed": seed}, api_name="/generate")
            wait_until(lambda: job.done() or not job.status().code < Status.IN_QUEUE)
            if job.done():
                refused.append(str(job.exception()))
                break
            jobs.append(job)
    try:
        assert refused and "Queue is full" in refused[0] and "try again" in refused[0]
        assert all(job.result(timeout=JOIN_S)[0] for job in jobs)  # the accepted ones are all served
    finally:
        demo.close()
        app_module.LIMITS = dataclasses.replace(app_module.LIMITS, queue_size=32)


def test_a_client_that_disconnects_mid_generation_frees_its_slot(served, app_module, monkeypatch):
    demo, url = served
    outcomes = []
    real_run = app_module.run_generation

    def recorded_run(generator, prompt, steps, batch_size, seed, progress, **options):
        def slow_progress(*args, **kwargs):  # every step takes a while, on any hardware
            threading.Event().wait(0.2)
            return progress(*args, **kwargs)

        try:
            result = real_run(generator, prompt, steps, batch_size, seed, slow_progress, **options)
            outcomes.append("finished")
            return result
        except Exception as error:
            outcomes.append(str(error))
            raise

    monkeypatch.setattr(app_module, "run_generation", recorded_run)
    config = httpx.get(url + "config").json()
    dependency = next(dependency for dependency in config["dependencies"] if dependency.get("api_name") == "generate")
    fn_index = dependency["id"]
    session = uuid.uuid4().hex
    # Every input at its default (so inputs added to Generate later need no change here), then the ones that matter.
    defaults = {component["id"]: component.get("props", {}).get("value") for component in config["components"]}
    data = [defaults.get(input_id) for input_id in dependency["inputs"]]
    data[:10] = ["red heart", "latent-lcm", 50, 1, "fp32", 0, "", "default", False, False]
    joined = httpx.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": fn_index,
                                                             "session_hash": session, "trigger_id": None})
    assert joined.status_code == 200
    with httpx.stream("GET", url + f"gradio_api/queue/data?session_hash={session}", timeout=JOIN_S) as stream:
        for line in stream.iter_lines():
            if '"index":2' in line:  # two denoising steps done: hang up
                break
    wait_until(lambda: outcomes)
    assert len(outcomes) == 1 and "Stopped: the client disconnected" in outcomes[0]


def test_building_the_app_writes_nothing_next_to_it(served):
    assert not (Path(__file__).resolve().parents[1] / "app.pyi").exists()  # gradio stubs of component subclasses


def test_compare_downloads_are_written_in_gradios_cache_folder():
    from gradio.utils import get_upload_folder

    from ui.compare import write_downloads

    paths = write_downloads([{"config": "1. gan", "latency_ms": 1.0}], "rocket", 0)
    assert all(Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve()) for path in paths)
    assert json.loads(Path(paths[1]).read_text())["results"][0]["config"] == "1. gan"
