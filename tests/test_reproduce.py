"""Copy as code (genimg.serve.reproduce): the snippets say what was run, and running them gives the same image."""
from __future__ import annotations

import re
import shlex

import numpy as np
import pytest
from PIL import Image

from genimg.serve import reproduce


def blocks(markdown: str) -> list[str]:
    return re.findall(r"```(?:python|bash)\n(.*?)\n```", markdown, flags=re.S)


def test_the_app_arguments_split_into_load_and_generate_with_defaults_left_out():
    load, call = reproduce.load_and_call(dict(prompt="a cat", backend="gan", steps=0, batch_size=2, precision="bf16",
                                              seed=7, model="", scheduler="default", compile=False,
                                              tiny_decoder=True, match_concepts=False, negative_prompt=" "))
    assert load == {"backend": "gan", "precision": "bf16", "match_concepts": False}  # tiny decoder: latent only
    assert call == {"prompt": "a cat", "batch_size": 2, "seed": 7}


def test_upscale_is_a_load_option_the_cli_spells_and_is_left_out_when_off():
    arguments = dict(prompt="a cat", backend="latent-lcm", steps=1, batch_size=1, precision="fp32", seed=0)
    load, _ = reproduce.load_and_call({**arguments, "upscale": True})
    assert load["upscale"] == 2
    assert "--upscale 2" in reproduce.cli_command(load, {"prompt": "a cat"})
    assert "upscale" not in reproduce.load_and_call({**arguments, "upscale": False})[0]


def test_layout_is_left_out_when_on_and_spelled_when_off():
    arguments = dict(prompt="three stars", backend="gan", steps=0, batch_size=1, precision="fp32", seed=0)
    assert "layout" not in reproduce.load_and_call({**arguments, "layout": True})[1]
    load, call = reproduce.load_and_call({**arguments, "layout": False})
    assert call["layout"] is False and "layout=False" in reproduce.python_call(load, "generate", call)
    assert reproduce.cli_command(load, call).split()[-3] == "--no-layout"


def test_the_cli_command_quotes_the_prompt_and_spells_every_option():
    command = reproduce.cli_command({"backend": "latent", "precision": "fp32", "tiny_decoder": True,
                                     "match_concepts": False},
                                    {"prompt": "it's a \"cat\"", "steps": 4, "seed": 3, "negative_prompt": "dog"})
    assert shlex.split(command) == ["python", "-m", "genimg", "generate", "it's a \"cat\"", "--backend", "latent",
                                    "--precision", "fp32", "--tiny-decoder", "--no-match-concepts", "--steps", "4",
                                    "--seed", "3", "--negative-prompt", "dog", "--out", "outputs/"]


def test_the_markdown_holds_python_cli_and_client_collapsed():
    text = reproduce.reproduce_generation({"backend": "gan", "precision": "fp32"}, {"prompt": "rocket", "seed": 1},
                                          "/generate", {"prompt": "rocket", "backend": "gan", "seed": 1})
    assert "<details><summary>Copy as code" in text and text.rstrip().endswith("</details>")
    python, shell, client = blocks(text)
    assert "genimg.load('gan', precision='fp32')" in python and "generate('rocket', seed=1)" in python
    assert shell.startswith("python -m genimg generate rocket --backend gan")
    assert "predict(prompt='rocket', backend='gan', seed=1, api_name='/generate')" in client


@pytest.mark.slow
def test_running_the_python_snippet_draws_the_same_image(tmp_path, monkeypatch):
    import genimg

    monkeypatch.chdir(tmp_path)
    load, call = {"backend": "latent-lcm", "precision": "fp32", "tiny_decoder": True}, {"prompt": "rocket",
                                                                                        "steps": 1, "seed": 5}
    exec(reproduce.python_call(load, "generate", call), {})
    expected = genimg.load("latent-lcm", tiny_decoder=True).generate("rocket", steps=1, seed=5).images[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(expected))
