"""The GPU check (``python -m genimg.bench.gpu_check``, or tools/gpu_check.sh from a checkout) in its tiny CPU mode:
every step runs in its own process, writes its report and passes, so the check is known to work before GPU time is
spent on it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genimg.bench import gpu_check
from genimg.bench.gpu_check import STEPS, TOTAL_BUDGET_S, Step, main

ROOT = Path(__file__).resolve().parents[1]


def test_the_compiled_benchmark_comes_first_and_every_step_has_a_limit():
    names = [step.name for step in STEPS]
    # Most important first, and the steps that need no shipped models before those that do.
    assert names[:4] == ["benchmark_compiled", "warm_start", "throughput", "quantized"]
    assert TOTAL_BUDGET_S == 420 and all(step.budget_s > 0 for step in STEPS)
    assert len(set(names)) == len(STEPS)
    listed = subprocess.run([sys.executable, "-m", "genimg.bench.gpu_check", "--list"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    assert listed[::2] == names and listed[1::2] == [str(step.budget_s) for step in STEPS]


def test_a_step_is_one_function_in_the_list_and_a_crash_is_a_failed_report(tmp_path, monkeypatch):
    def broken(check):
        raise ValueError("planted")

    monkeypatch.setattr(gpu_check, "STEPS", [Step("planted", lambda check: {"passed": True, "rows": [
        {"thing": "x", "passed": True}]}, 1), Step("broken", broken, 1)])
    monkeypatch.setenv("GENIMG_GPU_CHECK_TINY", "1")
    assert main(["--out", str(tmp_path), "--step", "planted", "broken"]) == 1  # in this process, one after another
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
    assert main(["--out", str(tmp_path), "--only", "app", "nope"]) == 2  # the module itself, the same refusal
    assert not list(tmp_path.glob("*.json"))


def test_a_step_past_its_limit_is_stopped_and_reported_and_the_next_still_runs(tmp_path, monkeypatch):
    """The runner's own limits: a step that overruns gets SIGTERM, a failed report saying it ran out of time, and the
    check goes on; one that would start after the check's total is reported as not run."""
    monkeypatch.setattr(gpu_check, "STEPS", [Step("app", None, 1), Step("faults", None, 30), Step("backends", None, 1)])
    monkeypatch.setenv("GENIMG_GPU_CHECK_TOTAL_S", "3")
    started = []

    def slow_child(step, out, env, limit_s, log):
        started.append((step.name, round(limit_s)))
        if step.name == "faults":
            import time

            time.sleep(limit_s)  # the whole rest of the check's total
            return None  # what run_in_own_process returns for a step it stopped
        return 0

    monkeypatch.setattr(gpu_check, "run_in_own_process", slow_child)
    assert gpu_check.run_check(tmp_path) == 1
    assert [name for name, _ in started] == ["app", "faults"] and started[1][1] <= 3  # capped by the total
    for name in ("faults", "backends"):
        report = json.loads((tmp_path / f"{name}.json").read_text())
        assert report["passed"] is False and "ran out of its time limit" in report["failures"][0]
    assert "## faults: FAILED" in (tmp_path / "summary.md").read_text()


def test_a_child_process_past_its_limit_is_stopped(tmp_path):
    import time

    with (tmp_path / "log").open("w") as log:
        started = time.perf_counter()
        code = gpu_check.run_in_own_process(Step("app", None, 1), tmp_path, {**os.environ, "GENIMG_GPU_CHECK_TINY": "1",
                                            "PYTHONPATH": str(ROOT), "GENIMG_GPU_CHECK_WORKDIR": str(tmp_path)},
                                            0.5, log)
    assert code is None and time.perf_counter() - started < 30  # stopped, not waited for


def test_a_step_that_ran_out_of_time_is_reported_as_failed(tmp_path):
    assert main(["--out", str(tmp_path), "--timed-out", "app"]) == 1
    assert json.loads((tmp_path / "app.json").read_text())["passed"] is False
    assert "## app: FAILED" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_the_whole_check_passes_in_tiny_mode_on_the_cpu(tmp_path):
    env = {**os.environ, "GENIMG_GPU_CHECK_TINY": "1", "PYTHON": sys.executable,
           # The H100 budgets, stretched: tiny mode takes about 3.5 CPU-minutes in all, and on a 2-core machine shared
           # with other test runs (load average 10-14 seen) the backends step alone took 146 s of wall time.
           "GENIMG_GPU_CHECK_BUDGET_SCALE": "6",
           # No earlier run's compile cache: benchmark_compiled compiles cold, warm_start loads what it saved.
           "GENIMG_COMPILE_CACHE": str(tmp_path / "no-earlier-cache")}
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
    throughput = json.loads((tmp_path / "throughput.json").read_text())["bench"]
    assert {result["batch_size"] for result in throughput["results"]} == {2, 3}
    assert all(row["flops_per_image"] > 0 for result in throughput["results"] for row in result["rows"])
    assert list(tmp_path.glob("benchmark_compiled.[0-9][0-9].bin"))  # the compile cache, beside the reports
    # The compile cache's round trip: benchmark_compiled compiled cold and saved it beside the reports; warm_start, a
    # fresh process with an empty inductor cache (as a fresh GPU machine has), loaded it and missed no graph.
    cold = json.loads((tmp_path / "benchmark_compiled.json").read_text())["compile_cache"]
    assert cold["save"]["saved"] and cold["hits"]["fxgraph_cache_miss"] > 0
    warm_report = json.loads((tmp_path / "warm_start.json").read_text())
    warm = warm_report["compile_cache"]
    assert warm["load"]["loaded"] and warm["load"]["artifacts"]["inductor"] > 0
    assert warm["hits"]["fxgraph_cache_miss"] == 0 and warm["hits"]["fxgraph_cache_hit"]
    first_image = [target for target in warm_report["targets"] if target.startswith("first compiled image")]
    assert first_image and "not measured" not in first_image[0]  # a warm first call, held to its target
    assert "loaded before compiling: yes" in (tmp_path / "summary.md").read_text()


def test_a_benchmark_step_cut_short_keeps_the_rows_it_finished(tmp_path, monkeypatch):
    from genimg.bench import gpu_steps

    partial = gpu_steps.bench_folder(gpu_steps.Check(out=tmp_path, workdir=tmp_path), "throughput")
    partial.mkdir()
    rows = [{"label": "stock diffusers", "median_ms_per_image": 10.0, "min_ms_per_image": 9.0,
             "max_ms_per_image": 11.0, "images_per_s": 100.0, "speedup_vs_stock": 1.0, "options": {},
             "load_ms": 1.0, "first_call_ms": 1.0, "pixels_within_8_of_stock": 1.0, "max_pixel_diff_vs_stock": 0.0}]
    (partial / "gpu-bench.json").write_text(json.dumps({"device": "cpu", "command": "x", "results": [
        {"architecture": "sd-turbo", "resolution": 512, "steps": 1, "guidance": 0.0, "batch_size": 8,
         "dtype": "fp16", "rows": rows}]}))
    monkeypatch.setenv("GENIMG_GPU_CHECK_WORKDIR", str(tmp_path))
    assert main(["--out", str(tmp_path / "out"), "--timed-out", "throughput"]) == 1
    report = json.loads((tmp_path / "out" / "throughput.json").read_text())
    assert report["passed"] is False and "ran out" in report["failures"][0]
    assert report["bench"]["results"][0]["batch_size"] == 8
    assert "sd-turbo: 512x512, 1 steps, guidance 0.0, batch 8" in (tmp_path / "out" / "summary.md").read_text()
