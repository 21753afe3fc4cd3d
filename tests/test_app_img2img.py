"""The Image to image API (/img2img) through gradio_client: an uploaded file in, a redrawn image out, bad files
refused with genimg's message."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def heart_file(tmp_path_factory):
    """A red heart drawn by the app itself, saved as a JPEG larger than the model's 64x64."""
    import genimg

    heart = genimg.load("latent-lcm", device="cpu").generate("red heart", steps=2, seed=1).images[0]
    path = tmp_path_factory.mktemp("uploads") / "heart.jpg"
    heart.resize((300, 200)).save(path, quality=90)
    return path


def test_img2img_redraws_an_uploaded_image(client, heart_file):
    from gradio_client import handle_file

    image, latency = client.predict(handle_file(str(heart_file)), "rocket", "latent-lcm", 0.5, 2, 0,
                                    api_name="/img2img")
    assert Image.open(image).size == (128, 128) and "upscale" in latency  # the 2x upscaler, as on the page
    assert "image_encode" in latency and "denoise" in latency and "Prompt match" in latency
    assert "Strength 0.5: 2 of a 4-step schedule" in latency
    assert "generator.img2img('input.png', 'rocket', strength=0.5, steps=2, seed=0)" in latency
    assert "image=handle_file('input.png')" in latency and "api_name='/img2img'" in latency
    weak, _ = client.predict(handle_file(str(heart_file)), "rocket", "latent-lcm", 0.1, 1, 0, api_name="/img2img")
    original = np.asarray(Image.open(heart_file).convert("RGB").resize((128, 128)), dtype=float)
    distance = [np.abs(np.asarray(Image.open(path).convert("RGB"), dtype=float) - original).mean()
                for path in (weak, image)]
    assert distance[0] < distance[1]  # a weaker strength keeps more of the upload


@pytest.mark.parametrize("name, content, message", [
    ("notes.png", b"this is not an image", "not a PNG, JPEG or WebP"),
    ("tiny.gif", None, "not a PNG, JPEG or WebP"),
])
def test_a_bad_upload_gets_a_clear_message_and_the_app_keeps_serving(client, heart_file, tmp_path, name, content,
                                                                      message):
    from gradio_client import handle_file

    path = tmp_path / name
    if content is None:
        Image.new("RGB", (8, 8)).save(path, format="GIF")
    else:
        path.write_bytes(content)
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(path)), "rocket", api_name="/img2img")
    image, _ = client.predict(handle_file(str(heart_file)), "rocket", api_name="/img2img")
    assert Path(image).exists()


def test_img2img_refuses_other_backends_and_a_missing_image(client, heart_file):
    from gradio_client import handle_file

    with pytest.raises(Exception, match="not in the list of choices|latent"):
        client.predict(handle_file(str(heart_file)), "rocket", "gan", api_name="/img2img")
    with pytest.raises(Exception, match="Upload an image"):
        client.predict(None, "rocket", api_name="/img2img")
    with pytest.raises(Exception, match="less than minimum|strength"):
        client.predict(handle_file(str(heart_file)), "rocket", "latent-lcm", 0, api_name="/img2img")


def test_img2img_runs_a_diffusers_pipeline_from_an_allowed_folder(client, heart_file, tmp_path, monkeypatch):
    from gradio_client import handle_file

    from genimg.bench.pipelines import SD15, save_pipeline, tiny

    monkeypatch.setenv("GENIMG_MODEL_DIRS", str(tmp_path))  # read per request: the folder check lets it through
    folder = save_pipeline(tiny(SD15), tmp_path / "sd15")
    image, latency = client.predict(handle_file(str(heart_file)), "a cat", "latent", 0.5, 1, 0, False, "",
                                    str(folder), api_name="/img2img")
    height, width = genimg_size(folder)
    assert Image.open(image).size == (width, height) and "image_encode" in latency  # the pipeline's own size
    assert "drew at its own resolution" in latency  # the page's default upscale is for the embedded models
    assert f"model={str(folder)!r}" in latency  # copy as code names the pipeline
    with pytest.raises(Exception, match="runs on the 'latent' backend"):
        client.predict(handle_file(str(heart_file)), "a cat", "latent-lcm", 0.5, 1, 0, False, "", str(folder),
                       api_name="/img2img")
    with pytest.raises(Exception, match="not a hub id"):
        client.predict(handle_file(str(heart_file)), "a cat", "latent", 0.5, 1, 0, False, "", "/etc",
                       api_name="/img2img")


def genimg_size(folder) -> tuple[int, int]:
    import genimg

    return genimg.load("latent", device="cpu", model=str(folder)).image_size


def test_the_tab_opens_with_examples_drawn_by_genimg_one_click_each():
    import app
    from ui.img2img import EXAMPLES, EXAMPLES_FOLDER

    for name, _, _, _ in EXAMPLES:  # small PNGs drawn by `python -m tools.draw_examples`, shipped in assets/
        path = EXAMPLES_FOLDER / f"{name}.png"
        assert path.stat().st_size < 20_000 and Image.open(path).size == (128, 128)
    datasets = [component["props"] for component in app.build_demo().config["components"]
                if component["type"] == "dataset" and component["props"].get("elem_id") == "img2img-examples"]
    assert len(datasets) == 1  # gr.Examples: a click fills the picture, the prompt and the strength
    samples = datasets[0]["samples"]
    assert [(Path(image["path"]).name, prompt, strength) for image, prompt, strength in samples] == \
        [(f"{name}.png", prompt, strength) for name, _, prompt, strength in EXAMPLES]


def test_img2img_draws_the_models_own_64_px_when_upscale_is_off(client, heart_file):
    from gradio_client import handle_file

    image, latency = client.predict(handle_file(str(heart_file)), "rocket", "latent-lcm", 0.5, 2, 0,
                                    upscale=False, api_name="/img2img")
    assert Image.open(image).size == (64, 64) and "| upscale |" not in latency and "upscale=False" in latency


def test_an_example_redraws_towards_its_prompt(client):
    from gradio_client import handle_file

    from ui.generation import match_scores
    from ui.img2img import EXAMPLES, EXAMPLES_FOLDER

    name, _, prompt, strength = EXAMPLES[0]
    start = EXAMPLES_FOLDER / f"{name}.png"
    image, latency = client.predict(handle_file(str(start)), prompt, "latent-lcm", strength, 2, 0,
                                    api_name="/img2img")
    assert Image.open(image).size == (128, 128) and "Prompt match" in latency
    redrawn, before = match_scores([Image.open(image), Image.open(start).convert("RGB").resize((64, 64))], prompt)
    assert redrawn > before  # the judge sees more of the prompt in the redrawn picture than in the example
