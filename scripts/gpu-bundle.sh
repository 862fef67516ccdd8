#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh and gpu-investigate.sh carry to a GPU machine: the `jester`
# binary and the test binaries that hold CUDA twin tests (the jester library's unit tests, and its
# `model`, `select` and `input` integration tests), stripped (≈ 22 MB in all, under the device tool's 64 MiB).
# Usage: scripts/gpu-bundle.sh [DIR]   (default .gpu, which should be git-ignored locally)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-.gpu}"
rm -rf "$dir" && mkdir -p "$dir"
scripts/with-torch cargo test --workspace --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, shutil, sys
dest = sys.argv[1]
wanted = {("jester", "bin"): "jester", ("jester", "lib"): "test-lib",
          ("model", "test"): "test-model", ("select", "test"): "test-select",
          ("input", "test"): "test-input"}
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    for kind in m["target"]["kind"]:
        name = wanted.get((m["target"]["name"], kind))
        if name:
            shutil.copy(m["executable"], f"{dest}/{name}")
' "$dir"
strip "$dir"/*
ls -la "$dir"
