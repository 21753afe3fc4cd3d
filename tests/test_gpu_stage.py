"""The GPU check's staging for a remote machine that takes files in pieces (tools/gpu_stage.sh): each call's tree
fits the 64 MiB such a machine takes per call, and holds what that call needs."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / "tools" / "gpu_stage.sh"
TRANSFER_LIMIT_MIB = 64  # what the remote machine takes per call
CHECK_MODELS = ("gan", "vae", "latent", "latent-lcm", "latent-tiny-decoder", "concepts", "judge", "upscaler")


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    """A small repository laid out like genimg's."""
    files = ["app.py", "genimg/__init__.py", "tools/gpu_check.sh", "docs/api.md", "tests/test_a.py",
             "assets/eval/eval.json", "assets/bench/a.png",
             *[f"assets/models/{name}/config.json" for name in (*CHECK_MODELS, "latent-pruned", "gan-pruned")],
             "assets/models/concepts/name_contexts.safetensors"]
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
    """What the remote tool sends: tracked files and untracked files git does not ignore."""
    return set(git(folder, "ls-files").splitlines()) | set(git(folder, "ls-files", "-o", "--exclude-standard")
                                                             .splitlines())


def stage(folder: Path, *args: str) -> str:
    return subprocess.run(["bash", str(STAGE), *args], cwd=folder, check=True, capture_output=True, text=True).stdout


def test_each_tree_sends_what_its_call_needs_and_full_brings_everything_back(repo):
    everything = on_disk(repo)
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("/.gpu/\n")
    stage(repo, "tree", "code")
    assert sent(repo) == {"app.py", "genimg/__init__.py", "tools/gpu_check.sh", "docs/api.md", "tests/test_a.py"}
    assert on_disk(repo) == everything  # left out of the call, not deleted
    stage(repo, "tree", "models")
    assert sent(repo) == {"app.py", "genimg/__init__.py", "tools/gpu_check.sh",
                          *[f"assets/models/{name}/config.json" for name in CHECK_MODELS]}
    stage(repo, "tree", "full")
    assert sent(repo) == everything
    assert git(repo, "status", "--porcelain") == ""  # the index is HEAD's again
    assert (repo / ".git" / "info" / "exclude").read_text() == "/.gpu/\n"  # the user's own lines are kept


def test_the_models_call_of_this_checkout_fits_the_limit():
    """What call 3 sends from this repository (the "models" tree's rule): every tracked file outside assets/, docs/
    and tests/, and every model folder but the pruned ones, without the names' contexts table."""
    tracked = git(ROOT, "ls-files").splitlines()
    sent = [name for name in tracked if not name.startswith(("assets/", "docs/", "tests/"))
            or (name.startswith("assets/models/") and not name.split("/")[2].endswith("-pruned")
                and name != "assets/models/concepts/name_contexts.safetensors")]
    assert set(CHECK_MODELS) <= {name.split("/")[2] for name in sent if name.startswith("assets/models/")}
    mib = sum((ROOT / name).stat().st_size for name in sent if (ROOT / name).exists()) / 2**20
    assert mib < TRANSFER_LIMIT_MIB - 0.5, f"call 3 would send {mib:.1f} MiB"


def test_keep_brings_a_calls_compile_cache_into_the_checkout_step_by_step(repo, tmp_path):
    returned = tmp_path / "returned"
    returned.mkdir()
    for name in ("benchmark_compiled.00.bin", "benchmark_compiled.01.bin", "throughput.00.bin", "summary.md"):
        (returned / name).write_bytes(b"x" * 100)
    stage(repo, "keep", str(returned))
    cache = repo / "assets" / "bench" / "gpu" / "compile-cache"
    assert sorted(path.name for path in cache.iterdir()) == ["benchmark_compiled.00.bin", "benchmark_compiled.01.bin",
                                                            "throughput.00.bin"]
    (returned / "benchmark_compiled.01.bin").unlink()  # a later run's cache of that step fits one file
    (returned / "throughput.00.bin").unlink()
    stage(repo, "keep", str(returned))
    assert sorted(path.name for path in cache.iterdir()) == ["benchmark_compiled.00.bin", "throughput.00.bin"]
    with pytest.raises(subprocess.CalledProcessError):
        stage(repo, "keep", str(tmp_path / "empty"))


def test_the_three_calls_run_the_checks_steps_within_their_totals_and_fit_the_limit(repo):
    import json
    import re
    import shlex

    from genimg.bench.gpu_check import STEPS

    lines = stage(repo, "calls").splitlines()
    calls = [json.loads(line) for line in lines if line.startswith("{")]
    sent = [float(line.split()[1]) for line in lines if line.strip().startswith("sends")]
    assert len(calls) == len(sent) == 3 and all(mib < TRANSFER_LIMIT_MIB for mib in sent)
    budgets = {step.name: step.budget_s for step in STEPS}
    ran = []
    for call in calls:
        environment = dict(re.findall(r"(GENIMG_GPU_CHECK_\w+)=(\"[^\"]*\"|\S+)", call["command"]))
        steps = shlex.split(environment["GENIMG_GPU_CHECK_STEPS"])[0].split()
        total = int(environment["GENIMG_GPU_CHECK_TOTAL_S"])
        assert sum(budgets[name] for name in steps) <= total < call["timeout_s"]
        assert call["command"].endswith("bash tools/gpu_check.sh $OUT/check") and len(call["command"]) <= 2000
        assert len(call["carry"]) <= 8
        ran += steps
    assert ran[:3] == ["benchmark_compiled", "warm_start", "throughput"]  # the first call measures the compiled path
    assert calls[2]["carry"] == [".gpu/models"] and "cp -r .gpu/models/. assets/models/" in calls[2]["command"]
    assert "GENIMG_TEXT_MODEL=/tmp/minilm" in calls[2]["command"]  # MiniLM, staged by call 2
    assert all("PYTHONPATH=/tmp/site" in call["command"] for call in calls)  # the wheels, installed by call 1
    # With a machine's start (48 s on 2026-11-27, 90 s allowed) and the install and transfers around each call
    # (25 s), the three fit the remote machine's 15 minutes.
    assert 90 + sum(int(re.search(r"GENIMG_GPU_CHECK_TOTAL_S=(\d+)", call["command"]).group(1)) + 25
                    for call in calls) <= 15 * 60


def test_the_models_folder_holds_what_the_check_loads_without_the_names_table(repo):
    stage(repo, "models")
    staged = repo / ".gpu" / "models"
    assert sorted(path.name for path in staged.iterdir()) == sorted(CHECK_MODELS)  # no pruned models
    assert not (staged / "concepts" / "name_contexts.safetensors").exists()
    assert (repo / "assets" / "models" / "concepts" / "name_contexts.safetensors").exists()  # copied, not moved
    assert ".gpu" not in {name.split("/")[0] for name in sent(repo)}  # ignored: it travels only when carried


def test_the_trees_work_in_a_git_worktree_too(repo, tmp_path_factory):
    """In a worktree .git is a file: the exclude block goes to the repository's info/exclude."""
    worktree = tmp_path_factory.mktemp("wt") / "gpu"
    git(repo, "worktree", "add", "-q", str(worktree))
    everything = sent(worktree)
    stage(worktree, "tree", "models")
    assert sent(worktree) == {"app.py", "genimg/__init__.py", "tools/gpu_check.sh",
                              *[f"assets/models/{name}/config.json" for name in CHECK_MODELS]}
    stage(worktree, "tree", "full")
    assert sent(worktree) == everything and git(worktree, "status", "--porcelain") == ""
