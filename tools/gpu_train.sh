#!/usr/bin/env bash
# Trains every embedded model on a GPU in one run (see docs/training.md). Expects, beside the checkout:
# .whl/ (diffusers wheel), .devdata/minilm (MiniLM in fp16) and .devdata/emoji64.npz (the rendered dataset).
# Two tracks share the GPU: latent (autoencoder -> unet -> tiny decoder -> distill) and gan -> vae -> judge.
# Usage: bash tools/gpu_train.sh OUT_DIR SCALE   (SCALE multiplies every stage's time budget)
set -u
out=${1:-/tmp/genimg-out}; scale=${2:-1}
mkdir -p "$out"
${PYTHON:-python3} -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 GENIMG_CACHE=/tmp/genimg-cache GENIMG_TEXT_MODEL=$PWD/.devdata/minilm
mkdir -p "$GENIMG_CACHE" && cp .devdata/emoji64.npz "$GENIMG_CACHE/"
secs() { ${PYTHON:-python3} -c "print($1 * $scale)"; }
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
${PYTHON:-python3} -c "from genimg.train.common import *; from genimg.train.data import load_dataset; d=load_dataset(); build_caption_bank(training_captions(d, 'emoji'), 'emoji', 'cuda')" || exit 1
(
  ${PYTHON:-python3} -m genimg train autoencoder --steps 100000 --seconds "$(secs 40)" --batch-size 256 &&
  ${PYTHON:-python3} -m genimg train unet --steps 100000 --seconds "$(secs 230)" --batch-size 512 &&
  ${PYTHON:-python3} -m genimg train tiny-decoder --steps 100000 --seconds "$(secs 25)" &&
  ${PYTHON:-python3} -m genimg train distill --steps 100000 --seconds "$(secs 70)"
) > "$out/latent.log" 2>&1 &
(
  ${PYTHON:-python3} -m genimg train gan --steps 100000 --seconds "$(secs 150)" &&
  ${PYTHON:-python3} -m genimg train vae --steps 100000 --seconds "$(secs 110)" &&
  ${PYTHON:-python3} -m genimg train judge --steps 100000 --seconds "$(secs 90)"
) > "$out/small.log" 2>&1 &
wait
grep -h '^{"stage"' "$out"/*.log
tar cf - assets/models | split -b 15M - "$out/models.tar."  # pieces a remote machine can return (tools/gpu_stage.sh)
