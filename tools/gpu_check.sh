#!/usr/bin/env bash
# Every GPU check: `bash tools/gpu_check.sh OUT`, the same as `python -m genimg.bench.gpu_check --out OUT` run from
# this checkout. The steps are genimg/bench/gpu_check.py's STEPS, most important first (the compiled benchmark
# leads); each runs in its own process under its own time limit, and the run stops after GENIMG_GPU_CHECK_TOTAL_S
# seconds (default 420). Each step writes OUT/<step>.json and rewrites OUT/summary.md as soon as it ends (the
# benchmark steps their rows as each batch size ends, and their compile cache as OUT/<step>.NN.bin), so a step cut
# short leaves what it finished. Exits non-zero if any step failed or ran out of time. docs/benchmarks.md ("The GPU
# check") documents the reports.
#
# GENIMG_GPU_CHECK_STEPS="benchmark_compiled throughput": only those steps (a rerun after a fix).
# GENIMG_COMPILE_CACHE=DIR: where the compiled steps load an earlier run's cache from (default: the committed
#   assets/bench/gpu/compile-cache, if there).
# GENIMG_GPU_CHECK_TINY=1: every step on the CPU with tiny models (tests/test_gpu_check.py runs it that way).
set -u
out=${1:-outputs/gpu-check}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
exec ${PYTHON:-python3} -m genimg.bench.gpu_check --out "$out"
