"""A plain start prints genimg's own lines only: ``import genimg``, ``python -m genimg generate`` and ``python app.py``
(through its first image) show no library warnings in a fresh process (genimg.quiet drops the known ones)."""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from genimg.quiet import KNOWN_NOISE, DropMessage, filter_known_noise
from genimg.serve.launch import LaunchedApp

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# A library's warning: Python's warnings (UserWarning, FutureWarning, ...), logged warnings and torch's glog-style
# "W1204 15:13:06.79 ..." lines, and the torchao/diffusers messages a plain start used to print.
NOISE = re.compile(r"Warning|Failed to load|Unable to import|^W\d{4} ", re.MULTILINE)


def noise_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if NOISE.search(line)]


def run_python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=OFFLINE, capture_output=True, text=True,
                          timeout=timeout)


def test_the_filter_drops_each_known_message_and_nothing_else():
    filter_known_noise()
    filter_known_noise()  # twice: still one filter per logger
    samples = {"torchao": "Failed to load /site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: no",
               "torch.utils._pytree": "<enum 'KernelPreference'> is an Enum subclass and is now natively supported "
                                      "by torch.compile as an opaque value type.",
               "diffusers.quantizers.torchao.torchao_quantizer": "Unable to import `torchao` Tensor objects. This "
                                                                 "may affect loading checkpoints"}
    assert set(samples) == {name for name, _ in KNOWN_NOISE}
    for name, message in samples.items():
        logger = logging.getLogger(name)
        ours = [each for each in logger.filters if isinstance(each, DropMessage)]  # diffusers may add its own
        assert len(ours) == 1
        known = logger.makeRecord(name, logging.WARNING, __file__, 1, message, None, None)
        other = logger.makeRecord(name, logging.WARNING, __file__, 1, "Failed to convert the model", None, None)
        assert not logger.filter(known) and logger.filter(other)


def test_import_genimg_prints_nothing():
    result = run_python("-c", "import genimg")
    assert result.returncode == 0 and result.stderr == "" and result.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("options", [[], ["--tiny-decoder"]], ids=["kl-decoder", "tiny-decoder"])
def test_the_cli_prints_only_its_result(tmp_path, options):
    result = run_python("-m", "genimg", "generate", "a red heart", "--backend", "latent-lcm", *options,
                        "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not noise_in(result.stderr + result.stdout), result.stderr
    assert (tmp_path / "0000.png").exists() and "0000.png" in result.stdout


@pytest.mark.slow
def test_the_app_prints_only_its_own_lines_through_its_first_image(tmp_path):
    log = tmp_path / "app.log"
    with LaunchedApp(log_path=log, env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}) as app:
        request = urllib.request.Request(app.url + "v1/image", method="POST",
                                         data=json.dumps({"prompt": "a red heart", "backend": "gan"}).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:  # loads diffusers' models (and torchao)
            assert response.status == 200 and response.read(8) == b"\x89PNG\r\n\x1a\n"
    output = log.read_text()
    assert "Running on local URL" in output
    assert not noise_in(output), output
