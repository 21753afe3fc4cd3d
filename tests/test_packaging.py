"""Shipping: pyproject.toml admits requirements.txt's pins; the wheel carries the models and a `genimg` command that
finds them from any folder; GENIMG_ASSETS and a missing models folder say what they do."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import genimg
from genimg import assets
from genimg.errors import ModelLoadError

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "genimg", "assets/models")


def pins() -> dict[str, str]:
    """requirements.txt: name -> exact version."""
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line]
    assert all(str(r.specifier).startswith("==") for r in requirements), "requirements.txt pins exact versions"
    return {canonicalize_name(r.name): str(r.specifier)[2:] for r in requirements}


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [item for group in project.get("optional-dependencies", {}).values() for item in group]
    return [Requirement(item) for item in [*project["dependencies"], *extras]]


def test_pyproject_ranges_admit_every_pin_of_requirements_txt():
    pinned, ranges = pins(), {canonicalize_name(r.name): r.specifier for r in declared()}
    assert set(ranges) == set(pinned), "pyproject.toml and requirements.txt name different packages"
    refused = {name: (pinned[name], str(spec)) for name, spec in ranges.items() if pinned[name] not in spec}
    assert not refused, f"pyproject ranges exclude the pinned versions: {refused}"
    assert all(spec for spec in ranges.values()), "every dependency has a range"


def test_genimg_assets_points_at_a_folder_and_says_how_to_fix_a_missing_one(tmp_path, monkeypatch):
    assert assets.models_folder({"GENIMG_ASSETS": str(tmp_path)}) == tmp_path.resolve()
    assert assets.models_folder({}) == assets.CHECKOUT  # a checkout finds its own assets/models first
    monkeypatch.setenv("GENIMG_ASSETS", str(tmp_path))
    with pytest.raises(ModelLoadError, match="GENIMG_ASSETS") as caught:
        assets.check_models(tmp_path)
    assert "gan" in str(caught.value) and "pip install ." in str(caught.value)
    assert assets.check_models() == assets.ASSETS


def test_a_missing_models_folder_is_a_clear_load_error_not_a_hub_lookup(tmp_path, monkeypatch):
    from genimg import registry

    monkeypatch.setattr(registry, "check_models", lambda: assets.check_models(tmp_path))
    with pytest.raises(ModelLoadError, match="shipped models are missing"):
        registry.load_backend("gan", genimg.SpeedOptions(), None)


def run(command: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline (no build isolation: setuptools from this venv) from a copy of the sources, so the
    build writes nothing into the checkout and needs nothing but the files named in BUILD_INPUTS."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in BUILD_INPUTS:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(out), str(source)], cwd=source)
    [built] = out.glob("genimg-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_carries_every_shipped_model_file(wheel):
    with zipfile.ZipFile(wheel) as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
        entry_points = archive.read(next(name for name in sizes if name.endswith("entry_points.txt"))).decode()
    models = [path for path in (ROOT / "assets" / "models").rglob("*") if path.is_file()]
    assert models and any(path.suffix == ".safetensors" for path in models)
    for path in models:
        packaged = "genimg/shipped_models/" + path.relative_to(ROOT / "assets" / "models").as_posix()
        assert sizes.get(packaged) == path.stat().st_size, f"{packaged} missing or different in the wheel"
    assert "genimg = genimg.cli:main" in entry_points
    assert "genimg/serve/limits.py" in sizes and "genimg/cli/__init__.py" in sizes


@pytest.mark.slow
def test_an_installed_genimg_command_finds_its_models_from_any_folder(wheel, tmp_path):
    """A fresh venv with the wheel installed (--no-deps: torch and friends come from this venv through a .pth
    file, nothing is downloaded), used from a folder that is not the checkout."""
    venv, elsewhere = tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
         str(wheel)], cwd=tmp_path)
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       cwd=elsewhere).stdout.strip())
    (purelib / "dependencies-of-the-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "GENIMG_ASSETS")}
    help_text = run([str(venv / "bin" / "genimg"), "--help"], cwd=elsewhere, env=env).stdout
    assert "generate" in help_text and "bench" in help_text and "train" in help_text
    assert help_text == run([str(python), "-m", "genimg", "--help"], cwd=elsewhere, env=env).stdout
    where = run([str(python), "-c", "import genimg, genimg.assets as a; a.check_models(); "
                 "print(genimg.__file__); print(a.ASSETS)"], cwd=elsewhere, env=env).stdout.split()
    assert all(Path(path).is_relative_to(venv) for path in where), where  # the installed copy, not the checkout
    run([str(venv / "bin" / "genimg"), "generate", "red heart", "--backend", "gan", "--out", "images"],
        cwd=elsewhere, env=env)
    assert (elsewhere / "images" / "0000.png").stat().st_size > 0
