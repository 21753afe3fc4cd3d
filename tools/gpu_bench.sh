#!/usr/bin/env bash
# The GPU benchmark of issue 4 in one device call (see README "Speed: GPU"): SD-1.5 and SD-Turbo architectures at
# 512x512, stock diffusers fp16 against genimg's paths. Expects .whl/ carried beside the repo with the diffusers and
# importlib_metadata wheels (the device image has torch and transformers, not diffusers).
# Usage: bash tools/gpu_bench.sh OUT_DIR   (about 4 minutes on an H100: two torch.compile warm-ups of 75-100 s)
set -u
out=${1:-/tmp/genimg-gpu-bench}
mkdir -p "$out"
${PYTHON:-python3} -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv
# Without compile first (a minute): CUDA graphs alone, and a result even if the compile run is cut short.
${PYTHON:-python3} -m genimg.bench.gpu --no-compile --rounds 10 --out "$out/eager" 2>&1 | tee "$out/eager.log"
timeout 400 ${PYTHON:-python3} -m genimg.bench.gpu --rounds 10 --out "$out/compile" 2>&1 | tee "$out/compile.log"
