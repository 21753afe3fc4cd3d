"""The GPU check (tools/gpu_check.sh) in its tiny CPU mode: every step runs, writes its report and passes, so the
script is known to work before GPU time is spent on it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genimg.bench import gpu_check
from genimg.bench.gpu_check import STEPS, TOTAL_BUDGET_S, Step, main

ROOT = Path(__file__).resolve().parents[1]


def test_the_steps_fit_seven_minutes_most_important_first():
    assert [step.name for step in STEPS][:3] == ["backends", "faults", "app"]
    assert TOTAL_BUDGET_S == 420 and all(step.budget_s > 0 for step in STEPS)
    assert len({step.name for step in STEPS}) == len(STEPS)


def test_a_step_is_one_function_in_the_list_and_a_crash_is_a_failed_report(tmp_path, monkeypatch):
    def broken(check):
        raise ValueError("planted")

    monkeypatch.setattr(gpu_check, "STEPS", [Step("planted", lambda check: {"passed": True, "rows": [
        {"thing": "x", "passed": True}]}, 1), Step("broken", broken, 1)])
    monkeypatch.setenv("GENIMG_GPU_CHECK_TINY", "1")
    assert main(["--out", str(tmp_path)]) == 1
    assert json.loads((tmp_path / "planted.json").read_text())["passed"] is True
    broken_report = json.loads((tmp_path / "broken.json").read_text())
    assert broken_report["passed"] is False and "planted" in broken_report["failures"][0]
    summary = (tmp_path / "summary.md").read_text()
    assert "## planted: passed" in summary and "## broken: FAILED" in summary


def test_a_rerun_names_its_steps_and_an_unknown_step_is_refused_before_anything_runs(tmp_path):
    env = {**os.environ, "GENIMG_GPU_CHECK_TINY": "1", "PYTHON": sys.executable, "GENIMG_GPU_CHECK_STEPS": "nope"}
    finished = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), str(tmp_path)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2 and "no such step: nope" in finished.stdout
    assert not list(tmp_path.glob("*.json"))


def test_a_step_that_ran_out_of_time_is_reported_as_failed(tmp_path):
    assert main(["--out", str(tmp_path), "--timed-out", "app"]) == 1
    assert json.loads((tmp_path / "app.json").read_text())["passed"] is False
    assert "## app: FAILED" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_the_whole_check_passes_in_tiny_mode_on_the_cpu(tmp_path):
    env = {**os.environ, "GENIMG_GPU_CHECK_TINY": "1", "PYTHON": sys.executable,
           # The H100 budgets, stretched: tiny mode takes about 3.5 CPU-minutes in all, and on a 2-core machine shared
           # with other test runs (load average 10-14 seen) the backends step alone took 146 s of wall time.
           "GENIMG_GPU_CHECK_BUDGET_SCALE": "6"}
    finished = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), str(tmp_path)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=6 * TOTAL_BUDGET_S + 120)
    for step in STEPS:
        report = json.loads((tmp_path / f"{step.name}.json").read_text())
        assert report["passed"], (step.name, report.get("failures"), finished.stdout[-3000:])
        assert report["tiny"] and report["device"] == "cpu"
    assert finished.returncode == 0, finished.stdout[-3000:]
    backends = json.loads((tmp_path / "backends.json").read_text())["rows"]
    assert {row["backend"] for row in backends} == {"gan", "vae", "latent", "latent-lcm", "model"}
    assert all(row["mean_abs_diff"] <= 12 for row in backends)
    app = json.loads((tmp_path / "app.json").read_text())["rows"]
    assert [row["endpoint"] for row in app][-2:] == ["/compare", "/img2img"] and len(app) == 7
    bench = json.loads((tmp_path / "benchmark.json").read_text())["bench"]
    assert {result["batch_size"] for result in bench["results"]} == {1, 8}
