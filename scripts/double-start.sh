#!/usr/bin/env bash
# Two `jester train --out X` started together into one new folder, N times (default 20): every time
# exactly one must finish with its run intact and the other be refused, naming the holder's pid (or
# finding the finished run). Exits non-zero on the first try that breaks this.
#
#   scripts/with-torch scripts/double-start.sh [N] [JESTER_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
tries=${1:-20}
jester=${2:-target/debug/jester}
work=$(mktemp -d -t jester-double-start-XXXX)
trap 'rm -rf "$work"' EXIT
"$jester" data synth --preset tiny --out "$work/bench" > /dev/null
small=(--steps 3 --batch 16 --set model.image.width=32 --set model.image.mlp_dim=64
  --set model.text.width=32 --set model.text.mlp_dim=64 --set model.embed_dim=32
  --set data.tokenizer_vocab=300 --set data.loader.shuffle_buffer=256)
for i in $(seq 1 "$tries"); do
  out="$work/run-$i"
  "$jester" train --data "$work/bench/pool" --out "$out" "${small[@]}" > /dev/null 2> "$work/a.err" &
  a=$!
  "$jester" train --data "$work/bench/pool" --out "$out" "${small[@]}" > /dev/null 2> "$work/b.err" &
  b=$!
  status_a=0; wait $a || status_a=$?
  status_b=0; wait $b || status_b=$?
  if (( (status_a == 0) == (status_b == 0) )); then
    echo "try $i: exit codes $status_a and $status_b (want exactly one success)"; cat "$work/a.err" "$work/b.err"; exit 1
  fi
  loser="$work/a.err"; (( status_a != 0 )) || loser="$work/b.err"
  if ! grep -qE "in use by another process \(pid [0-9]+\)|already holds a run" "$loser"; then
    echo "try $i: the refusal does not name the holder:"; cat "$loser"; exit 1
  fi
  if [[ ! -f "$out/model.safetensors" || ! -f "$out/summary.json" ]]; then
    echo "try $i: the winner's run is not intact"; ls -la "$out" || true; exit 1
  fi
  echo "try $i: one run, one refusal ($(grep -oE 'pid [0-9]+|already holds a run' "$loser" | head -1))"
done
echo "$tries of $tries: one run and one refusal naming the holder every time"
