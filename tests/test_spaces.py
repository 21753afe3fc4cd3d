"""The Hugging Face Space: the README card agrees with requirements.txt, packages.txt holds what the app needs at run
time, and spaces.GPU holds the GPU as long as the slowest request the serving limits allow."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from huggingface_hub.repocard import metadata_load
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from genimg.serve.limits import LOAD_AND_WARM_UP_S, ServingLimits

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def pinned(name: str) -> str:
    pins = dict(line.split("#")[0].strip().split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line.split("#")[0])
    return pins[name]


def test_the_card_builds_the_pinned_gradio_on_a_python_the_package_supports():
    card = metadata_load(ROOT / "README.md")
    assert card["sdk"] == "gradio" and card["app_file"] == "app.py" and (ROOT / card["app_file"]).exists()
    assert str(card["sdk_version"]) == pinned("gradio")
    python = str(card["python_version"])
    assert re.fullmatch(r"3\.\d+", python), "python_version is major.minor, quoted (3.10 must not become 3.1)"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Version(python) in SpecifierSet(requires)


def test_packages_txt_holds_debian_names_and_the_compiler_torch_compile_needs():
    packages = (ROOT / "packages.txt").read_text().split()
    assert packages and all(DEBIAN_NAME.fullmatch(name) for name in packages), packages
    assert "torch.compile" in (ROOT / "app.py").read_text() and "g++" in packages  # inductor builds C++ kernels
    assert "fonts-noto-color-emoji" not in packages  # the font renders training data only, never read by the app


def test_gpu_duration_covers_load_warm_up_and_the_request_timeout():
    limits = ServingLimits(request_timeout_s=300)
    assert limits.gpu_duration_s() == 300 + LOAD_AND_WARM_UP_S
    assert limits.gpu_duration_s(configurations=4) == 4 * (300 + LOAD_AND_WARM_UP_S)
    assert ServingLimits(request_timeout_s=30.5).gpu_duration_s() == 151  # whole seconds, rounded up
    assert ServingLimits.from_env({"GENIMG_REQUEST_TIMEOUT_S": "60"}).gpu_duration_s() == 60 + LOAD_AND_WARM_UP_S


FAKE_SPACES = """
durations = {}
def GPU(duration=60):
    def decorate(function):
        durations[function.__name__] = duration
        return function
    return decorate
"""


@pytest.mark.slow
def test_the_app_asks_spaces_for_the_derived_durations_and_never_loads_the_font_code(tmp_path):
    """app.py imported with a stand-in ``spaces`` module (the real one only works on a Space)."""
    (tmp_path / "spaces.py").write_text(FAKE_SPACES)
    script = ("import sys, app, spaces; app.build_demo(); print(spaces.durations['generate'], "
              "spaces.durations['compare'], 'genimg.train.data' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "GENIMG_REQUEST_TIMEOUT_S": "45",
                                 "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "GENIMG_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    generate, compare, font_code_loaded = result.stdout.split()[-3:]
    assert int(generate) == 45 + LOAD_AND_WARM_UP_S and int(compare) == 4 * (45 + LOAD_AND_WARM_UP_S)
    assert font_code_loaded == "False"
