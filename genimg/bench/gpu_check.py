"""Every check that needs a GPU, as one list of steps: ``bash tools/gpu_check.sh OUT`` runs them in order, each in its
own process under its own time budget, and each step's report is written under OUT as soon as it ends.

    python -m genimg.bench.gpu_check --list                 # the steps, most important first, with their budgets
    python -m genimg.bench.gpu_check --step backends --out OUT
    GENIMG_GPU_CHECK_TINY=1 bash tools/gpu_check.sh OUT     # every step on the CPU with tiny models

A step is a plain function ``step(check) -> report`` in ``genimg.bench.gpu_steps``; adding one is adding a
``Step`` to ``STEPS`` (its place in the list is its priority). ``OUT/<step>.json`` holds its report and
``OUT/summary.md`` one section per step, rewritten after every step; the compiled steps also save their compile cache
there (``<step>.NN.bin``). The device tool brings back at most 8 files from one call, so each device call runs a few
steps (assets/bench/gpu/README.md): their JSON, the summary, the log and the cache files.
"""
from __future__ import annotations

import argparse
import json
import os
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
    budget_s: int  # on an H100; the shell script stops a step that runs over it (and the whole check at 420 s)


# Most important first: the compiled product path and its compile cache, then throughput and the fp8/int8 rows (all
# three need no shipped models, so the first device call runs them: assets/bench/gpu/README.md), then the uncompiled
# benchmark, whose H100 figures the 2026-11-27 check already holds, then the steps that need the shipped models and
# MiniLM. Budgets on an H100: the 2026-11-27 check measured backends 55 s, faults 11-13 s, app 31-39 s, benchmark
# 58 s, plus about 15 s of imports per step; the compiled steps are sized for a cold compile cache (max-autotune),
# and write their rows as they finish, so a step cut short keeps them.
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
TOTAL_BUDGET_S = 420  # one run of tools/gpu_check.sh (GENIMG_GPU_CHECK_TOTAL_S sets another, per device call)


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


def timed_out_report(name: str) -> dict:
    """A step that ran out of time: failed, with the benchmark rows it finished if it was a benchmark step (they are
    written as each batch size completes, into the check's workdir)."""
    report = {"step": name, "passed": False, "failures": [
        "ran out of its time budget (or the check's total); what it wrote before is in the log"]}
    workdir = os.environ.get("GENIMG_GPU_CHECK_WORKDIR")
    partial = gpu_steps.bench_folder(Check(out=Path("."), workdir=Path(workdir)), name) if workdir else None
    if partial is not None and (partial / "gpu-bench.json").exists():
        finished = gpu_steps.bench_report(partial)
        report.update({key: finished[key] for key in ("bench", "markdown", "targets", "compile_cache")})
        report["failures"] += finished["failures"]
        report["doc"] = "Cut short: the rows below are those it finished."
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genimg.bench.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print 'name budget_s' per step, most important first")
    parser.add_argument("--step", choices=[step.name for step in STEPS], help="run one step (default: all, in order)")
    parser.add_argument("--out", default="outputs/gpu-check")
    parser.add_argument("--timed-out", metavar="STEP", help="write STEP's report as failed: it ran out of time")
    parser.add_argument("--summary", action="store_true", help="rewrite OUT/summary.md from the reports in OUT "
                                                               "(reports of several device calls in one folder)")
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
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    steps = [step for step in STEPS if args.step in (None, step.name)]
    with tempfile.TemporaryDirectory(prefix="genimg-gpu-check-") as workdir:
        check = Check(out=out, workdir=Path(os.environ.get("GENIMG_GPU_CHECK_WORKDIR") or workdir), tiny=tiny_mode())
        check.workdir.mkdir(parents=True, exist_ok=True)
        reports = [run_step(step, check) for step in steps]
    for report in reports:
        print(f"{report['step']}: {'passed' if report['passed'] else 'FAILED'} in {report['seconds']:.0f} s",
              *report.get("failures", []), sep="\n  ", flush=True)
    return 0 if all(report["passed"] for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
