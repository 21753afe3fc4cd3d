#!/usr/bin/env bash
# Every GPU check: `bash tools/gpu_check.sh OUT`. The steps are genimg/bench/gpu_check.py's STEPS, most important
# first (the compiled benchmark leads); each runs in its own process under its own time budget, and the run stops
# after GENIMG_GPU_CHECK_TOTAL_S seconds (default 420). Each step writes OUT/<step>.json and rewrites OUT/summary.md
# as soon as it ends (the benchmark steps their rows as each batch size ends, and their compile cache as
# OUT/<step>.NN.bin), so a step cut short leaves what it finished. Exits non-zero if any step failed or ran out of time.
#
# GENIMG_GPU_CHECK_STEPS="benchmark_compiled throughput": only those steps (one device call's share; see
#   assets/bench/gpu/README.md for the three calls).
# GENIMG_COMPILE_CACHE=DIR: where the compiled steps load an earlier run's cache from (default: the committed
#   assets/bench/gpu/compile-cache, if there).
# GENIMG_GPU_CHECK_TINY=1: every step on the CPU with tiny models (tests/test_gpu_check.py runs it that way).
# On the device machine, tools/gpu_stage.sh stages what the image lacks in earlier calls (the wheels into /tmp/site,
# MiniLM into /tmp/minilm); this script picks them up.
set -u
out=${1:-outputs/gpu-check}
python=${PYTHON:-python3}
mkdir -p "$out"
log="$out/gpu-check.log"
: >"$log"
# Staged in earlier calls on the same machine (tools/gpu_stage.sh): the wheels in /tmp/site, MiniLM in /tmp/minilm.
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
[ -f /tmp/minilm/config.json ] && export GENIMG_TEXT_MODEL=${GENIMG_TEXT_MODEL:-/tmp/minilm}
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
[ -n "${GENIMG_GPU_CHECK_TINY:-}" ] || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>"$log" 2>&1
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
export GENIMG_GPU_CHECK_WORKDIR=$workdir
scale=${GENIMG_GPU_CHECK_BUDGET_SCALE:-1}  # the tiny mode on a loaded 2-core machine may need more than the H100 budgets
total=${GENIMG_GPU_CHECK_TOTAL_S:-420}
end=$((SECONDS + $(awk -v s="$scale" -v t="$total" 'BEGIN { printf "%d", t * s }')))
# On the CPU, inductor's oneDNN weight prepacking makes compiled graphs uncacheable ("mkldnn tensors unpickleable"):
# tiny mode turns it off so that it proves the compile cache's save/load round trip that CUDA runs rely on. The
# product's CPU compile keeps prepacking.
[ -n "${GENIMG_GPU_CHECK_TINY:-}" ] && export TORCHINDUCTOR_CPP_WEIGHT_PREPACK=0
status=0
steps=$($python -m genimg.bench.gpu_check --list) || { echo "cannot list the steps (see $log)"; exit 1; }
# GENIMG_GPU_CHECK_STEPS="backends app": only these steps (a rerun after a fix, when device time is short).
if [ -n "${GENIMG_GPU_CHECK_STEPS:-}" ]; then
  steps=$(grep -E "^(${GENIMG_GPU_CHECK_STEPS// /|}) " <<<"$steps") || { echo "no such step: $GENIMG_GPU_CHECK_STEPS"; exit 2; }
fi
while read -r step budget; do
  left=$((end - SECONDS))
  budget=$(awk -v b="$budget" -v s="$scale" 'BEGIN { printf "%d", b * s }')
  [ "$budget" -gt "$left" ] && budget=$left
  if [ "$budget" -le 0 ]; then
    $python -m genimg.bench.gpu_check --out "$out" --timed-out "$step" >>"$log" 2>&1
    echo "$step: not run, the check's time is up"; status=1; continue
  fi
  echo "== $step (budget ${budget} s)" | tee -a "$log"
  timeout -k 10 "$budget" $python -m genimg.bench.gpu_check --out "$out" --step "$step" >>"$log" 2>&1
  code=$?
  if [ $code -eq 124 ] || [ $code -eq 137 ]; then
    $python -m genimg.bench.gpu_check --out "$out" --timed-out "$step" >>"$log" 2>&1
    echo "$step: ran out of its ${budget} s"; status=1
  elif [ $code -ne 0 ]; then
    echo "$step: FAILED (see $out/$step.json)"; status=1
  else
    echo "$step: passed"
  fi
done <<<"$steps"
cat "$out/summary.md"
exit $status
