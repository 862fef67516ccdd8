#!/usr/bin/env bash
# Runs every recipe of configs/experiments/ on both benchmarks into results/RECIPE/, sharing the
# trained parts (data, references, runs with identical settings) in results/.work/ (not committed).
# Usage: scripts/results.sh [--quick] [JESTER_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
if [[ "${1:-}" == "--quick" ]]; then quick="--quick"; shift; fi
jester="${1:-target/debug/jester}"
mkdir -p results/.work
for bench in synthetic fashion-mnist; do
  for recipe in headline scores curation filter-ratio distill-sweep distill distill-compute; do
    name="$recipe-$bench"
    echo "== $name $(date -u +%H:%M:%S)"
    "$jester" experiment "configs/experiments/$name.toml" $quick \
      --out "results/$name" --work results/.work
  done
done
# Flexi-JEST at the paper's token ratio (the tiny-hires preset; synthetic scenes only).
echo "== headline-tiny-hires-synthetic $(date -u +%H:%M:%S)"
"$jester" experiment configs/experiments/headline-tiny-hires-synthetic.toml $quick \
  --out results/headline-tiny-hires-synthetic --work results/.work
