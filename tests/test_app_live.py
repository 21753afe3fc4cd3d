"""The Live tab's API (/live) through gradio_client, like any caller."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def test_live_draws_one_image_with_its_latency(client):
    image, latency = client.predict("a red heart", api_name="/live")
    assert Image.open(image).size == (64, 64)
    assert "ms** to draw \u201ca red heart\u201d" in latency and "drawn as red heart" in latency
    assert "latent-lcm 1 step" in latency and "seed 0" in latency  # the fastest configuration by default
    assert "denoise" in latency and "decode" in latency


def test_live_takes_its_options_and_a_seed_changes_the_image(client):
    first, _ = client.predict("rocket", 0, 2, "fp32", False, api_name="/live")
    again, _ = client.predict("rocket", 0, 2, "fp32", False, api_name="/live")
    other, latency = client.predict("rocket", 5, 2, "fp32", False, api_name="/live")
    assert "latent-lcm 2 steps" in latency and "seed 5" in latency
    assert Image.open(first).tobytes() == Image.open(again).tobytes()
    assert Image.open(first).tobytes() != Image.open(other).tobytes()


def test_a_cleared_prompt_draws_nothing_and_is_not_an_error(client):
    image, latency = client.predict("   ", api_name="/live")
    assert image is None and "Type a prompt" in latency


@pytest.mark.parametrize("arguments, message", [
    (dict(steps=9), "greater than maximum value 4"),
    (dict(precision="fp16"), "bf16"),
    (dict(prompt="x" * 1001), "limit is 1000"),
])
def test_bad_live_input_is_a_clear_error(client, arguments, message):
    with pytest.raises(Exception, match=message):
        client.predict(**{"prompt": "rocket", **arguments}, api_name="/live")
    image, _ = client.predict("rocket", api_name="/live")
    assert Path(image).exists()


def test_a_live_result_carries_the_code_that_reproduces_it(client, app_url):
    import re

    image, latency = client.predict("rocket", 3, 2, "fp32", True, api_name="/live")
    assert "<details><summary>Copy as code" in latency
    python, shell, client_code = re.findall(r"```(?:python|bash)\n(.*?)\n```", latency, flags=re.S)
    assert ("genimg.load('latent-lcm', precision='fp32', tiny_decoder=True, engine='openvino', "
            "text_engine='openvino-int8')") in python
    assert "generate('rocket', steps=2, seed=3)" in python and "--tiny-decoder" in shell
    namespace = {}
    exec(client_code.replace("http://127.0.0.1:7860/", app_url), namespace)
    assert Image.open(namespace["result"][0]).tobytes() == Image.open(image).tobytes()
