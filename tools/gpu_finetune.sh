#!/usr/bin/env bash
# After tools/gpu_train.sh: continue the latent UNet from the shipped weights, re-distil it, retrain GAN and VAE.
# Needs .whl/ (diffusers wheel) and .devdata/ from `python tools/pack_device_data.py --init assets/models/latent`.
# Usage: bash tools/gpu_finetune.sh OUT_DIR SCALE   (SCALE multiplies every stage's time budget)
set -u
out=${1:-/tmp/genimg-out}; scale=${2:-1}; py=${PYTHON:-python3}
mkdir -p "$out"
$py -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 GENIMG_CACHE=/tmp/genimg-cache GENIMG_TEXT_MODEL=$PWD/.devdata/minilm
rm -rf assets/models && mkdir -p assets/models/latent && cp -r .devdata/init/. assets/models/latent/
secs() { $py -c "print($1 * $scale)"; }
$py tools/device_unpack.py || exit 1
(
  $py -m genimg train unet --init-from assets/models/latent --steps 100000 --seconds "$(secs 150)" --batch-size 512 --lr 2e-4 &&
  $py -m genimg train distill --steps 100000 --seconds "$(secs 70)"
  tar cf - assets/models/latent assets/models/latent-lcm | split -b 15M - "$out/latent.tar."
) > "$out/latent.log" 2>&1 &
(
  $py -m genimg train gan --steps 100000 --seconds "$(secs 120)" &&
  $py -m genimg train vae --steps 100000 --seconds "$(secs 90)"
  tar cf - assets/models/gan assets/models/vae | split -b 15M - "$out/small.tar."
) > "$out/small.log" 2>&1 &
wait
grep -h '^{"stage"' "$out"/*.log
