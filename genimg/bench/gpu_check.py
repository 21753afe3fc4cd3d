"""Every check that needs a GPU, in one command: ``python -m genimg.bench.gpu_check --out OUT`` runs the steps below
in order, each in its own process under its own time limit, and writes each step's report under OUT as soon as the
step ends. It exits 0 when every step passed, 1 otherwise. docs/benchmarks.md ("The GPU check") documents the
reports.

    python -m genimg.bench.gpu_check --out OUT                  # every step, most important first
    python -m genimg.bench.gpu_check --out OUT --only app       # a rerun of some steps (GENIMG_GPU_CHECK_STEPS too)
    python -m genimg.bench.gpu_check --list                     # the steps with their time limits
    GENIMG_GPU_CHECK_TINY=1 python -m genimg.bench.gpu_check    # every step on the CPU with tiny models (the tests)

A step is a plain function ``step(check) -> report`` in ``genimg.bench.gpu_steps``; adding one is adding a ``Step``
to ``STEPS`` (its place in the list is its priority). ``OUT/<step>.json`` holds its report, ``OUT/summary.md`` one
section per step (rewritten after every step) and ``OUT/gpu-check.log`` every step's output; the compiled steps also
save their compile cache there (``<step>.NN.bin``), for the next run on the same GPU architecture.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from genimg.bench import gpu_steps
from genimg.bench.gpu_steps import Check


@dataclass(frozen=True)
class Step:
    name: str
    run: object  # (Check) -> dict with "passed"
    budget_s: int  # its time limit on an H100: a step that runs over it is stopped and reported as such


# Most important first, so that a run cut short by its total keeps what matters most: the compiled product path and
# its compile cache, then throughput and the fp8/int8 rows (none of them needs the shipped models), then the
# uncompiled benchmark, then the steps that need the shipped models and MiniLM. Limits on an H100: the 2026-11-27
# check measured backends 55 s, faults 11-13 s, app 31-39 s, benchmark 58 s, plus about 15 s of imports per step; the
# compiled steps are sized for a cold compile cache (max-autotune), and write their rows as they finish, so a step cut
# short keeps them.
STEPS = [
    Step("benchmark_compiled", gpu_steps.benchmark_compiled, 190),
    Step("warm_start", gpu_steps.warm_start, 60),
    Step("throughput", gpu_steps.throughput, 120),
    Step("quantized", gpu_steps.quantized, 150),
    Step("benchmark", gpu_steps.benchmark, 90),
    Step("backends", gpu_steps.backends, 80),
    Step("faults", gpu_steps.faults, 40),
    Step("app", gpu_steps.app, 70),
    Step("compiled", gpu_steps.compiled, 120),
]
TOTAL_BUDGET_S = 420  # the most one run takes, in seconds (GENIMG_GPU_CHECK_TOTAL_S sets another)
STOP_GRACE_S = 10  # a step past its limit gets SIGTERM (the benchmark steps save their compile cache), then SIGKILL


def tiny_mode() -> bool:
    return os.environ.get("GENIMG_GPU_CHECK_TINY", "") not in ("", "0")


def environment(check: Check) -> dict:
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() and not check.tiny else "cpu"
    return {"device": device, "torch": torch.__version__, "tiny": check.tiny, "threads": torch.get_num_threads()}


def run_step(step: Step, check: Check) -> dict:
    """Runs one step; an exception is a failed step with its traceback, never a crash without a report. Each step
    compiles into its own empty inductor cache, so what makes its first compiled call warm is the compile cache it
    loads (genimg.accel.compile_cache), never another step's leftovers."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(check.workdir / f"inductor-{step.name}")
    started = time.perf_counter()
    try:
        report = step.run(check)
    except Exception as error:  # noqa: BLE001 - the report says what broke
        report = {"passed": False, "failures": [f"{type(error).__name__}: {error}"],
                  "traceback": traceback.format_exc()}
    report = {"step": step.name, "doc": (step.run.__doc__ or "").strip(), **report,
              "seconds": time.perf_counter() - started, **environment(check)}
    write_report(check.out, report)
    return report


def write_report(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{report['step']}.json").write_text(json.dumps(report, indent=2, default=str))
    write_summary(out)


def write_summary(out: Path) -> None:
    """OUT/summary.md: one section per step that has a report, in the order of STEPS."""
    lines = ["# genimg GPU check", ""]
    for step in STEPS:
        path = out / f"{step.name}.json"
        if path.exists():
            lines += section(json.loads(path.read_text()))
    (out / "summary.md").write_text("\n".join(lines))


def section(report: dict) -> list[str]:
    verdict = "passed" if report["passed"] else "FAILED"
    lines = [f"## {report['step']}: {verdict} ({report.get('seconds', 0):.0f} s, {report.get('device', '?')}"
             f"{', tiny' if report.get('tiny') else ''})", "", " ".join(report.get("doc", "").split()), ""]
    lines += [f"- {failure}" for failure in report.get("failures", [])]
    rows = report.get("rows") or []
    if rows:
        keys = [key for key in rows[0] if key not in ("notes", "passed")]
        lines += ["", "| " + " | ".join(keys + ["passed"]) + " |", "|" + "---|" * (len(keys) + 1)]
        lines += ["| " + " | ".join(_cell(row.get(key)) for key in keys) + f" | {row['passed']} |" for row in rows]
    if report.get("markdown"):
        # The benchmark's tables, without its title, one heading level down.
        lines += ["", report["markdown"].split("\n", 6)[-1].replace("\n## ", "\n### ")]
    if not report.get("markdown"):  # the benchmark's markdown already ends with its targets table
        lines += [f"- target: {target}" for target in report.get("targets", [])]
    return lines + [""]


def _cell(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value).replace("|", "/").replace("\n", " ")[:120]


def timed_out_report(name: str, workdir: str | None = None) -> dict:
    """A step that ran out of time: failed, with the benchmark rows it finished if it was a benchmark step (they are
    written as each batch size completes, into the check's workdir)."""
    report = {"step": name, "passed": False, "failures": [
        "ran out of its time limit (or the check's total); what it wrote before is in the log"]}
    workdir = workdir or os.environ.get("GENIMG_GPU_CHECK_WORKDIR")
    partial = gpu_steps.bench_folder(Check(out=Path("."), workdir=Path(workdir)), name) if workdir else None
    if partial is not None and (partial / "gpu-bench.json").exists():
        finished = gpu_steps.bench_report(partial)
        report.update({key: finished[key] for key in ("bench", "markdown", "targets", "compile_cache")})
        report["failures"] += finished["failures"]
        report["doc"] = "Cut short: the rows below are those it finished."
    return report


def selected_steps(names: list[str] | None) -> list[Step]:
    """The steps to run, in STEPS' order: those named (a rerun), else all. An unknown name is a ValueError."""
    unknown = sorted(set(names or ()) - {step.name for step in STEPS})
    if unknown:
        raise ValueError(f"no such step: {' '.join(unknown)} (the steps: {' '.join(step.name for step in STEPS)})")
    return [step for step in STEPS if not names or step.name in names]


def step_environment(workdir: str) -> dict:
    """What each step's process runs with: this genimg first on the path, no hub access (the check builds every
    model it needs), and in tiny mode inductor's CPU weight prepacking off: prepacked graphs cannot be cached
    ("mkldnn tensors unpickleable"), and tiny mode proves the compile cache's save/load round trip that CUDA runs
    rely on (the product's CPU compile keeps prepacking)."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "GENIMG_GPU_CHECK_WORKDIR": workdir, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if tiny_mode():
        env["TORCHINDUCTOR_CPP_WEIGHT_PREPACK"] = "0"
    return env


def run_in_own_process(step: Step, out: Path, env: dict, limit_s: float, log) -> int | None:
    """``--step NAME`` in a child process (its own session, so a stop reaches what it started); its exit status, or
    None when it ran past ``limit_s`` and was stopped."""
    command = [sys.executable, "-m", "genimg.bench.gpu_check", "--out", str(out), "--step", step.name]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        return process.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        _stop(process)
        return None
    except BaseException:
        _stop(process)
        raise


def _stop(process: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_check(out: Path, names: list[str] | None = None) -> int:
    """Every selected step in order, each in its own process under its limit (times GENIMG_GPU_CHECK_BUDGET_SCALE),
    the whole run under GENIMG_GPU_CHECK_TOTAL_S; a step that would start after that is reported as not run. Prints
    one line per step, then OUT/summary.md. 0 when every step passed, 1 otherwise, 2 for an unknown step name."""
    try:
        steps = selected_steps(names)
    except ValueError as error:
        print(error)
        return 2
    scale = float(os.environ.get("GENIMG_GPU_CHECK_BUDGET_SCALE") or 1)
    end = time.monotonic() + float(os.environ.get("GENIMG_GPU_CHECK_TOTAL_S") or TOTAL_BUDGET_S) * scale
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    with tempfile.TemporaryDirectory(prefix="genimg-gpu-check-") as temporary, \
            (out / "gpu-check.log").open("w") as log:
        workdir = os.environ.get("GENIMG_GPU_CHECK_WORKDIR") or temporary
        if not tiny_mode():  # the card, its driver and memory, first in the log
            try:
                subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv"],
                               stdout=log, stderr=subprocess.STDOUT, check=False, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as error:
                log.write(f"nvidia-smi: {error}\n")
        env = step_environment(workdir)
        for step in steps:
            limit_s = min(step.budget_s * scale, end - time.monotonic())
            if limit_s <= 0:
                write_report(out, timed_out_report(step.name, workdir))
                print(f"{step.name}: not run, the check's time is up", flush=True)
                status = 1
                continue
            print(f"== {step.name} (limit {limit_s:.0f} s)", flush=True)
            log.write(f"== {step.name} (limit {limit_s:.0f} s)\n")
            log.flush()
            code = run_in_own_process(step, out, env, limit_s, log)
            if code is None:
                write_report(out, timed_out_report(step.name, workdir))
                print(f"{step.name}: ran out of its {limit_s:.0f} s", flush=True)
            else:
                print(f"{step.name}: {'passed' if code == 0 else f'FAILED (see {out / step.name}.json)'}",
                      flush=True)
            status = status or int(code != 0)
    print((out / "summary.md").read_text() if (out / "summary.md").exists() else "no step wrote a report")
    return status


def run_in_this_process(out: Path, names: list[str]) -> int:
    """``--step``: the named steps in this process, one after another (what each step's own process runs)."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="genimg-gpu-check-") as workdir:
        check = Check(out=out, workdir=Path(os.environ.get("GENIMG_GPU_CHECK_WORKDIR") or workdir), tiny=tiny_mode())
        check.workdir.mkdir(parents=True, exist_ok=True)
        reports = [run_step(step, check) for step in selected_steps(names)]
    for report in reports:
        print(f"{report['step']}: {'passed' if report['passed'] else 'FAILED'} in {report['seconds']:.0f} s",
              *report.get("failures", []), sep="\n  ", flush=True)
    return 0 if all(report["passed"] for report in reports) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg.bench.gpu_check", description=__doc__.split("\n\n")[0])
    names = [step.name for step in STEPS]
    parser.add_argument("--out", default="outputs/gpu-check", help="where the reports go (default: %(default)s)")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps (a rerun after a fix); "
                                                                 "default: GENIMG_GPU_CHECK_STEPS, else every step")
    parser.add_argument("--list", action="store_true", help="print 'name limit_s' per step, most important first")
    parser.add_argument("--step", nargs="+", choices=names, help="run these steps in this process, without time "
                                                                 "limits (what each step's own process runs)")
    parser.add_argument("--timed-out", metavar="STEP", help="write STEP's report as failed: it ran out of time")
    parser.add_argument("--summary", action="store_true", help="rewrite OUT/summary.md from the reports in OUT "
                                                               "(the reports of several runs in one folder)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.list:
        print("\n".join(f"{step.name} {step.budget_s}" for step in STEPS))
        return 0
    if args.summary:
        write_summary(out)
        print((out / "summary.md").read_text())
        return 0
    if args.timed_out:
        write_report(out, timed_out_report(args.timed_out))
        return 1
    if args.step:
        return run_in_this_process(out, args.step)
    return run_check(out, args.only or os.environ.get("GENIMG_GPU_CHECK_STEPS", "").split() or None)


if __name__ == "__main__":
    sys.exit(main())
