#!/usr/bin/env bash
# jester's checks on an NVIDIA GPU, in one pass (CI has no GPU, so these run by hand):
#   1. the CUDA twin tests (selection and model: CUDA vs CPU, bf16 vs f32), which skip on a CPU;
#   2. `jester bench train` of tiny, tiny-hires, small and b16 (b = 256) in f32 and in bf16
#      autocast (the b16 rows are the step-time breakdown of uniform and JEST: load / score / step);
#   3. `jester demo` end to end on CUDA, timed.
# Usage: scripts/gpu-check.sh BIN_DIR OUT_DIR
#   BIN_DIR holds `jester` and the test binaries `test-*` built on the CPU machine by
#   scripts/gpu-bundle.sh (same libtorch version as the GPU machine's python3 torch, whose lib
#   folder is put on LD_LIBRARY_PATH).
set -uo pipefail
deadline=$(($(date +%s) + ${GPU_CHECK_SECONDS:-540}))
left() { echo $((deadline - $(date +%s))); }
bin=$(realpath "$1")
out=$(realpath "$2")
mkdir -p "$out"
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RUST_LOG=warn
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("python torch", torch.__version__, torch.version.cuda)'
nproc
work=$(mktemp -d)
cd "$work"

stage() { echo "== $1 $(date -u +%H:%M:%S)"; }

stage tests
for t in "$bin"/test-*; do
  "$t" cuda --nocapture 2>&1 | grep -E "^test |skipped|panicked|test result" | grep -v "0 passed; 0 failed"
done

for spec in "b16 10 --set batch=256" "small 20" "tiny-hires 20" "tiny 20"; do
  read -r config steps extra <<<"$spec"
  for precision in f32 bf16; do
    stage "bench $config $precision"
    # shellcheck disable=SC2086
    if (($(left) < 90)); then echo "skipped: out of time"; continue; fi
    limit=$(($(left) - 60)); ((limit > 200)) && limit=200
    timeout $limit "$bin/jester" bench train --config "$config" $extra --set "precision=$precision" \
      --steps "$steps" --device cuda --out "$out/bench-$config-$precision.json" 2>&1 \
      | grep -v "^\s*$" | tail -8
  done
done

stage demo
start=$(date +%s)
timeout $(($(left) - 5)) "$bin/jester" demo --out "$work/demo" 2>&1 | grep -v "INFO" | tail -20
echo "demo: $(($(date +%s) - start)) s"
cp "$work/demo/report.md" "$out/demo-report.md" 2>/dev/null
stage end
