"""POST /v1/image: one image per exchange, the time it took in the headers, bad input refused with a message."""
import io
import json

import httpx
import pytest
from PIL import Image

from genimg.serve.rest import PATH, parse_body, parse_server_timing, server_timing
from genimg.errors import InvalidRequest


@pytest.fixture(scope="module")
def url(app_url):
    return app_url.rstrip("/") + PATH


def post(url, body, **kwargs):
    payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(url, content=payload, headers={"content-type": "application/json"}, timeout=120, **kwargs)


def test_one_exchange_returns_the_png_and_where_its_time_went(url):
    response = post(url, {"prompt": "a red apple", "backend": "gan", "seed": 3})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (64, 64)
    timings = parse_server_timing(response.headers["server-timing"])
    assert {"engine", "png", "server"} <= set(timings)
    assert 0 < timings["engine"] <= timings["server"]
    info = json.loads(response.headers["genimg-info"])
    assert info["backend"] == "gan" and info["seed"] == 3 and info["drawn_as"]


def test_the_same_request_draws_the_same_image_as_generate_one(url, app_url):
    from gradio_client import Client

    body = {"prompt": "a slice of pizza", "backend": "latent-lcm", "steps": 1, "seed": 5}
    rest = Image.open(io.BytesIO(post(url, body).content)).convert("RGB")
    image_path, _ = Client(app_url, verbose=False).predict("a slice of pizza", "latent-lcm", 1, "fp32", 5,
                                                         api_name="/generate_one")
    assert list(rest.getdata()) == list(Image.open(image_path).convert("RGB").getdata())


@pytest.mark.parametrize("body, message", [
    ({"prompt": ""}, "empty"),
    ({"prompt": "a cat", "steps": 2.5}, "whole number"),
    ({"prompt": "a cat", "backend": "nope"}, "Unknown backend"),
    ({"prompt": "a cat", "seed": -1}, "seed"),
    ({"prompt": "a cat", "size": 1024}, "Unknown field"),
    ({"text": "a cat"}, "prompt"),
    ("not json", "not JSON"),
    ({"prompt": "a cat", "steps": 1000}, "steps"),
    ("x" * 20000, "at most"),
])
def test_bad_requests_get_400_and_a_message(url, body, message):
    response = post(url, body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_only_post_is_answered(url):
    assert httpx.get(url, timeout=30).status_code == 405


def test_body_defaults_and_types():
    # backend and precision are left to the server: the app's defaults, or a cluster's configured ones
    assert parse_body(b'{"prompt": "a cat"}') == {"prompt": "a cat", "steps": 0, "seed": 0}
    with pytest.raises(InvalidRequest, match="text"):
        parse_body(b'{"prompt": 3}')
    with pytest.raises(InvalidRequest, match="whole number"):
        parse_body(b'{"prompt": "a", "seed": true}')


def test_server_timing_names_are_tokens():
    header = server_timing({"total": 5.0, "text encoder": 1.25}, {"png": 0.5, "server": 7.0})
    assert header == "engine;dur=5.00, text-encoder;dur=1.25, png;dur=0.50, server;dur=7.00"
    assert parse_server_timing(header) == {"engine": 5.0, "text-encoder": 1.25, "png": 0.5, "server": 7.0}


def test_past_max_waiting_the_server_says_busy_and_takes_the_next_one_when_free():
    import threading

    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from genimg.serve.rest import image_route

    release, entered = threading.Event(), threading.Event()

    def generate(prompt, backend="latent-lcm", steps=0, precision="fp32", seed=0):
        entered.set()
        release.wait(30)
        raise InvalidRequest("done waiting")

    client = TestClient(Starlette(routes=[image_route(generate, max_waiting=1)]))
    first = threading.Thread(target=lambda: client.post(PATH, json={"prompt": "a cat"}))
    first.start()
    assert entered.wait(30)
    busy = client.post(PATH, json={"prompt": "a dog"})
    assert busy.status_code == 503 and "busy" in busy.json()["error"] and busy.headers["retry-after"] == "1"
    release.set()
    first.join(30)
    assert client.post(PATH, json={"prompt": "a dog"}).status_code == 400  # inside again: generate's own answer


def test_a_request_for_another_host_is_refused_like_every_route_of_a_local_app(url):
    response = httpx.post(url, json={"prompt": "a cat"}, headers={"host": "evil.example"}, timeout=30)
    assert response.status_code == 421
