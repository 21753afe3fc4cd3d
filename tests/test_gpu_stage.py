"""The GPU check's staging: each device call's tree fits the device tool's 64 MiB, and holds what that call needs."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / "tools" / "gpu_stage.sh"
DEVICE_LIMIT_MIB = 64
CHECK_MODELS = ("gan", "vae", "latent", "latent-lcm", "latent-tiny-decoder", "concepts", "judge")


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    """A small repository laid out like genimg's."""
    files = ["app.py", "genimg/__init__.py", "tools/gpu_check.sh", "assets/eval/eval.json", "assets/bench/a.png",
             *[f"assets/models/{name}/config.json" for name in (*CHECK_MODELS, "latent-pruned", "gan-pruned")]]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x" * 1000)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "layout")
    return tmp_path


def on_disk(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file() and ".git" not in
            path.parts}


def sent(folder: Path) -> set[str]:
    """What the device tool sends: tracked files and untracked files git does not ignore."""
    return set(git(folder, "ls-files").splitlines()) | set(git(folder, "ls-files", "-o", "--exclude-standard")
                                                             .splitlines())


def stage(folder: Path, *args: str) -> str:
    return subprocess.run(["bash", str(STAGE), *args], cwd=folder, check=True, capture_output=True, text=True).stdout


def test_each_tree_sends_what_its_call_needs_and_full_brings_everything_back(repo):
    everything = on_disk(repo)
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("/.gpu/\n")
    stage(repo, "tree", "code")
    assert sent(repo) == {"app.py", "genimg/__init__.py", "tools/gpu_check.sh"}
    assert on_disk(repo) == everything  # left out of the call, not deleted
    stage(repo, "tree", "models")
    assert sent(repo) == {"app.py", "genimg/__init__.py", "tools/gpu_check.sh",
                          *[f"assets/models/{name}/config.json" for name in CHECK_MODELS]}
    stage(repo, "tree", "full")
    assert sent(repo) == everything
    assert git(repo, "status", "--porcelain") == ""  # the index is HEAD's again
    assert (repo / ".git" / "info" / "exclude").read_text() == "/.gpu/\n"  # the user's own lines are kept


def test_the_models_call_of_this_checkout_fits_the_device_limit():
    """What call 3 sends from this repository (the "models" tree's rule): every tracked file outside assets/, and
    every model folder but the pruned ones."""
    tracked = git(ROOT, "ls-files").splitlines()
    sent = [name for name in tracked if not name.startswith("assets/")
            or (name.startswith("assets/models/") and not name.split("/")[2].endswith("-pruned"))]
    assert set(CHECK_MODELS) <= {name.split("/")[2] for name in sent if name.startswith("assets/models/")}
    mib = sum((ROOT / name).stat().st_size for name in sent if (ROOT / name).exists()) / 2**20
    assert mib < DEVICE_LIMIT_MIB - 0.5, f"call 3 would send {mib:.1f} MiB"
