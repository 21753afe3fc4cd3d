"""genimg on Ray Serve (genimg.serve.cluster): one local Ray cluster for the module, two generator replicas of one
CPU each, POST /v1/image through Serve's HTTP proxy on loopback."""
from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from genimg.errors import InvalidRequest
from genimg.serve import cluster
from tests.conftest import free_port

pytestmark = pytest.mark.slow
PROMPTS = ["a red apple", "rocket", "a slice of pizza", "red heart", "dog face", "grinning face", "a cute puppy",
           "fire", "star", "cat face", "sun", "snowman"]


@pytest.fixture(scope="module")
def cluster_url():
    import ray
    from ray import serve

    cluster.start_ray(None, cpus=2)
    try:
        settings = cluster.ClusterSettings(replicas=2, num_cpus=1, speed_options={"tiny_decoder": True})
        url = cluster.deploy(settings, "127.0.0.1", free_port())
        yield url.removesuffix("/v1/image")
    finally:
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()


def post(url: str, body, timeout: float = 120.0) -> tuple[int, dict, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/v1/image", data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def info_of(headers: dict) -> dict:
    return json.loads(headers["genimg-info"] if "genimg-info" in headers else headers["Genimg-Info"])


def test_two_replicas_both_draw_and_batches_form(cluster_url):
    bodies = [{"prompt": PROMPTS[i % len(PROMPTS)], "seed": i, "steps": 1} for i in range(32)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda body: post(cluster_url, body), bodies))
    assert [status for status, _, _ in answers] == [200] * len(bodies)
    infos = [info_of(headers) for _, headers, _ in answers]
    assert {Image.open(io.BytesIO(png)).size for _, _, png in answers} == {(64, 64)}
    assert len({info["replica"] for info in infos}) == 2, "both replicas drew"
    assert len({info["pid"] for info in infos}) == 2 and os.getpid() not in {info["pid"] for info in infos}
    assert max(info["batched_with"] for info in infos) > 1, "concurrent requests shared a batch"
    assert [info["seed"] for info in infos] == [body["seed"] for body in bodies]
    timing = answers[0][1].get("server-timing") or answers[0][1]["Server-Timing"]
    assert {"engine", "png", "replica", "server"} <= {entry.split(";")[0].strip() for entry in timing.split(",")}


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not JSON"),
    ({"prompt": "cat", "colour": "red"}, "Unknown field"),
    ({"prompt": "cat", "steps": -1}, "steps"),
    ({"prompt": "cat", "backend": "nope"}, "Unknown backend"),
    ({"prompt": "x" * 5000}, "prompt"),
    (json.dumps({"prompt": "x" * 20000}).encode(), "at most"),
    ({"prompt": "cat\ud83d"}, "prompt"),
])
def test_bad_input_gets_400_with_a_message(cluster_url, body, message):
    status, _, answer = post(cluster_url, body)
    assert status == 400
    assert message in json.loads(answer)["error"]


def test_other_paths_and_methods_are_refused(cluster_url):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(cluster_url + "/v1/image", timeout=30)
    assert error.value.code == 405
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(urllib.request.Request(cluster_url + "/admin", data=b"{}"), timeout=30)
    assert error.value.code == 404


def test_a_killed_replica_loses_no_request_and_is_replaced(cluster_url):
    from ray import serve

    _, headers, _ = post(cluster_url, {"prompt": "warm", "steps": 1})
    victim = info_of(headers)["pid"]
    answers, lock, stop = [], threading.Lock(), threading.Event()
    killed_at = {}

    def client(index: int) -> None:
        for round_ in range(40):
            if stop.is_set():
                return
            started = time.monotonic()
            status, headers, body = post(cluster_url, {"prompt": PROMPTS[(index + round_) % len(PROMPTS)],
                                                       "seed": round_, "steps": 1}, timeout=60)
            with lock:
                answers.append((started, time.monotonic(), status, headers, body))

    threads = [threading.Thread(target=client, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    os.kill(victim, signal.SIGKILL)
    killed_at["t"] = time.monotonic()
    time.sleep(6.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    statuses = [status for _, _, status, _, _ in answers]
    assert set(statuses) <= {200, 503}, statuses
    for _, _, status, headers, body in answers:  # a refusal says so, in JSON, with Retry-After
        if status == 503:
            assert "error" in json.loads(body) and (headers.get("Retry-After") or headers.get("retry-after"))
    after = [end for start, end, status, _, _ in answers if status == 200 and start > killed_at["t"]]
    assert after and min(after) - killed_at["t"] < 5.0, "images again within 5 s of the kill"
    assert victim not in {info_of(h)["pid"] for start, _, s, h, _ in answers if s == 200 and start > killed_at["t"]}

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = serve.status().applications[cluster.APP_NAME].deployments[cluster.GENERATORS].replica_states
        if states.get("RUNNING", 0) == 2 and len(states) == 1:
            break
        time.sleep(1.0)
    else:
        pytest.fail(f"the replica count was not restored: {states}")
    pids = set()
    for index in range(16):  # the replacement draws too
        _, headers, _ = post(cluster_url, {"prompt": PROMPTS[index % len(PROMPTS)], "seed": index, "steps": 1})
        pids.add(info_of(headers)["pid"])
    assert len(pids) >= 1 and victim not in pids


def test_the_app_draws_on_the_cluster(cluster_url, monkeypatch):
    import ray
    from gradio_client import Client

    import app
    from ui import generation

    monkeypatch.setenv("GENIMG_RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                           quiet=True)
    try:
        status, headers, png = post(url.rstrip("/"), {"prompt": "a red apple", "steps": 1})
        assert status == 200 and info_of(headers)["pid"] != os.getpid() and info_of(headers)["replica"]
        client = Client(url, verbose=False)
        _, info = client.predict("rocket", "latent-lcm", 1, "fp32", 3, api_name="/generate_one")
        assert info["replica"] and info["pid"] != os.getpid()
        gallery, report = client.predict("a slice of pizza", "gan", 0, 2, "fp32", 0, api_name="/generate")
        assert len(gallery) == 2 and "replica" in report
    finally:
        demo.close()
        generation.CLUSTER["drawer"] = None


def test_direct_replicas_answer_http_themselves(cluster_url):
    """``--direct``: Ray's proxy sends POST /v1/image straight to the Generators replicas (no ingress deployment),
    with the same contract; here as a second application under a route prefix."""
    from ray import serve

    settings = cluster.ClusterSettings(replicas=1, num_cpus=0, direct=True, speed_options={"tiny_decoder": True})
    serve.run(cluster.build_application(settings), name="genimg-direct", route_prefix="/direct", blocking=False)
    try:
        deployments = serve.status().applications["genimg-direct"].deployments
        assert set(deployments) == {cluster.GENERATORS}
        status, headers, png = post(cluster_url + "/direct", {"prompt": "rocket", "seed": 3, "steps": 1})
        assert status == 200 and Image.open(io.BytesIO(png)).size == (64, 64)
        info = info_of(headers)
        assert info["seed"] == 3 and info["replica"] and info["pid"] != os.getpid()
        _, _, two_hop = post(cluster_url, {"prompt": "rocket", "seed": 3, "steps": 1})
        assert two_hop == png, "the same request draws the same image either way"
        status, _, answer = post(cluster_url + "/direct", {"prompt": "cat", "steps": -1})
        assert status == 400 and "steps" in json.loads(answer)["error"]
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(cluster_url + "/direct/v1/image", timeout=30)
        assert error.value.code == 405
    finally:
        serve.delete("genimg-direct")


def test_settings_become_serve_options():
    from genimg.serve.limits import ServingLimits

    limits = ServingLimits(max_batch_size=6)
    assert cluster.ClusterSettings(replicas=3).autoscaling_config(limits) is None
    assert cluster.ClusterSettings(min_replicas=1, max_replicas=4).autoscaling_config(limits) == {
        "min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 6}
    with pytest.raises(InvalidRequest, match="Unknown setting"):
        cluster.app_builder({"backend": "gan", "colour": "red"})


def test_the_serve_config_in_the_docs_deploys_genimg():
    import re
    from pathlib import Path

    import yaml
    from ray.serve.schema import ServeDeploySchema

    doc = (Path(__file__).resolve().parents[1] / "docs" / "scaling.md").read_text()
    config = yaml.safe_load(re.search(r"```yaml\n(.*?)```", doc, re.S).group(1))
    ServeDeploySchema(**config)  # Ray's own schema for `serve deploy`
    (application,) = config["applications"]
    assert application["import_path"] == "genimg.serve.cluster:app_builder"
    assert cluster.app_builder(application["args"]) is not None
