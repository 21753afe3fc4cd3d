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
    assert Image.open(image).size == (128, 128) and "upscale" in latency  # sharpened by the 2x upscaler by default
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
            "text_engine='openvino-int8', upscale=2)") in python
    assert "generate('rocket', steps=2, seed=3)" in python and "--tiny-decoder" in shell
    namespace = {}
    exec(client_code.replace("http://127.0.0.1:7860/", app_url), namespace)
    assert Image.open(namespace["result"][0]).tobytes() == Image.open(image).tobytes()


def test_the_page_keeps_the_image_when_a_new_prompt_names_the_same_emoji_and_seed():
    """The page's own event: a prompt drawn as the emoji already shown (same seed and options) sends no image and
    says so in the latency line, which names the new prompt; another seed redraws."""
    import gradio as gr

    from ui.live import live_page

    image, line, _, shown = live_page("red heart", 0, 1, "fp32", True, "torch", False, None)
    assert image.size == (64, 64) and "to draw \u201cred heart\u201d" in line and "not redrawn" not in line
    again, line, _, still = live_page("a red heart", 0, 1, "fp32", True, "torch", False, shown)
    assert isinstance(again, type(gr.skip())) and still == shown
    assert "to draw \u201ca red heart\u201d (drawn as red heart): the same image as shown, not redrawn" in line
    assert "text_encode" in line and "denoise" not in line
    other, line, _, moved = live_page("a red heart", 7, 1, "fp32", True, "torch", False, shown)
    assert other.size == (64, 64) and moved != shown and "seed 7" in line and "not redrawn" not in line


def test_the_page_redraws_a_new_emoji_and_clears_on_an_empty_prompt():
    from ui.live import EMPTY_MESSAGE, live_page

    _, _, _, heart = live_page("red heart", 0, 1, "fp32", True, "torch", False, None)
    image, line, _, rocket = live_page("rocket", 0, 1, "fp32", True, "torch", False, heart)
    assert image.size == (64, 64) and rocket != heart and "drawn as rocket" in line
    assert live_page("  ", 0, 1, "fp32", True, "torch", False, rocket) == (None, EMPTY_MESSAGE, "", None)


@pytest.mark.parametrize("arguments, message", [
    (dict(engine="tensorrt"), "Unknown engine 'tensorrt': choose one of openvino, torch"),
    (dict(prompt="x" * 1001), "limit is 1000"),
    (dict(steps=9), "1 to 4 steps, got 9"),
])
def test_bad_input_to_the_page_is_a_clear_error(arguments, message):
    import gradio as gr

    from ui.live import live_page

    values = {"prompt": "rocket", "seed": 0, "steps": 1, "precision": "fp32", "tiny_decoder": True,
              "engine": "torch", "upscale": False, "shown": None, **arguments}
    with pytest.raises(gr.Error, match=message):
        live_page(**values)


def test_the_page_image_travels_inline_as_a_data_url():
    from PIL import Image as PILImage

    from ui.live import inline_image

    import gradio as gr

    component = inline_image(gr.Image(type="pil", format="png"))
    payload = component.postprocess(PILImage.new("RGB", (64, 64), "red"))
    assert payload.url.startswith("data:image/png;base64,") and payload.path is None
    assert component.postprocess(None) is None


def test_live_upscales_2x_by_default_and_draws_the_models_own_64_px_when_told(client):
    image, latency = client.predict("rocket", 0, 1, "fp32", True, "openvino", api_name="/live")
    assert Image.open(image).size == (128, 128)
    assert "upscale" in latency and "upscaled 2x (128 px)" in latency and "upscale=2" in latency
    image, latency = client.predict("rocket", 0, 1, "fp32", True, "openvino", False, api_name="/live")
    assert Image.open(image).size == (64, 64) and "upscaled" not in latency and "upscale=False" in latency
