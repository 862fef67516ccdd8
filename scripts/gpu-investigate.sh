#!/usr/bin/env bash
# Runs recipes on an NVIDIA GPU machine with the carried binary (see gpu-check.sh) and copies
# their report, summary and plot to OUT_DIR. Usage: scripts/gpu-investigate.sh BIN_DIR OUT_DIR RECIPE...
set -uo pipefail
deadline=$(($(date +%s) + ${GPU_CHECK_SECONDS:-540}))
bin=$(realpath "$1"); out=$(realpath "$2"); shift 2
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" RUST_LOG=warn
work=$(mktemp -d)
for recipe in "$@"; do
  name=$(basename "$recipe" .toml)
  echo "== $name $(date -u +%H:%M:%S)"
  timeout $((deadline - $(date +%s))) "$bin/jester" experiment "$recipe" --quick \
    --out "$work/$name" --work "$work/shared" 2>&1 | grep -v INFO | tail -12
  for f in report.md summary.json curves.png; do cp "$work/$name/$f" "$out/$name-$f" 2>/dev/null; done
done
echo "== end $(date -u +%H:%M:%S)"
