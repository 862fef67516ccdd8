#!/usr/bin/env bash
# Kill-and-resume soak: trains one JEST run uninterrupted, then KILLS copies of it with SIGKILL at
# random moments (checkpoints are written every 2 steps, so many kills land inside a checkpoint
# write), resumes each until it finishes, and checks that
#   - every resumed run logs exactly the uninterrupted run's per-step losses, and
#   - no checkpoint left behind is corrupt (every `step-*` folder is complete, its safetensors
#     files parse, and `latest` names a complete one).
# Not run by CI (minutes of CPU); its result is recorded in BENCHMARKS.md.
#
#   scripts/soak-resume.sh [JESTER_BINARY] [RUNS]      (default target/release/jester, 20)
set -euo pipefail
cd "$(dirname "$0")/.."
jester=$(realpath "${1:-target/release/jester}")
runs=${2:-20}
work=$(mktemp -d /tmp/jester-soak.XXXXXX)
trap 'rm -rf "$work"' EXIT
export JESTER_LOG=${JESTER_LOG:-warn}
python=${JESTER_TORCH_PYTHON:-python3}

"$jester" data synth --out "$work/data" --set benchmark.pool=3000 --set benchmark.curated=600 \
  --set benchmark.eval=200 >/dev/null
common=(--config tiny --set batch=32 --set log_every=1 --set checkpoint_every=2
        --set keep_checkpoints=3 --seed 7)
"$jester" train --data "$work/data/curated-strong" --out "$work/reference" "${common[@]}" \
  --steps 20 >/dev/null 2>&1
"$jester" embed --model "$work/reference" --data "$work/data/pool" \
  --out "$work/reference.safetensors" >/dev/null 2>&1
learner=(--data "$work/data/pool" --method jest --reference "$work/reference.safetensors"
         "${common[@]}" --steps 40)

start=$(date +%s.%N)
"$jester" train "${learner[@]}" --out "$work/clean" >/dev/null 2>&1
clean_seconds=$("$python" -c "print(round($(date +%s.%N) - $start, 2))")
losses() { "$python" -c 'import json,sys; [print(l["step"], l["loss"]) for l in map(json.loads, open(sys.argv[1]))]' "$1"; }
losses "$work/clean/metrics.jsonl" >"$work/clean.losses"
echo "uninterrupted run: 40 steps in ${clean_seconds} s"

check_checkpoints() {
  "$python" - "$1" <<'PY'
import json, os, struct, sys
root = os.path.join(sys.argv[1], "checkpoints")
bad = []
if os.path.isdir(root):
    latest = os.path.join(root, "latest")
    if os.path.exists(latest):
        name = open(latest).read().strip()
        if not os.path.exists(os.path.join(root, name, "state.json")):
            bad.append(f"latest names {name}, which is incomplete")
    for name in sorted(os.listdir(root)):
        if not name.startswith("step-"):
            continue
        folder = os.path.join(root, name)
        for file in ("model.safetensors", "optimizer.safetensors"):
            path = os.path.join(folder, file)
            try:
                with open(path, "rb") as f:
                    n = struct.unpack("<Q", f.read(8))[0]
                    header = json.loads(f.read(n))
                end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
                if os.path.getsize(path) != 8 + n + end:
                    bad.append(f"{path}: size does not match its header")
            except Exception as e:  # noqa: BLE001 - any failure is a corrupt checkpoint
                bad.append(f"{path}: {e}")
        try:
            json.load(open(os.path.join(folder, "state.json")))
        except Exception as e:  # noqa: BLE001
            bad.append(f"{folder}/state.json: {e}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
}

kills=0 corrupt=0 mismatched=0
for i in $(seq 1 "$runs"); do
  out="$work/run-$i"
  # First start, killed at a random moment in (0.3 s, 1.2 × the clean run's time).
  delay=$("$python" -c "import random; random.seed($i); print(round(random.uniform(0.3, 1.2 * $clean_seconds), 2))")
  "$jester" train "${learner[@]}" --out "$out" >/dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  check_checkpoints "$out" >"$work/check-$i" || { corrupt=$((corrupt + 1)); cat "$work/check-$i"; }
  # A kill before the run folder was complete leaves nothing to resume: start afresh then.
  if [[ -e "$out/config.json" ]]; then
    "$jester" train --resume "$out" >/dev/null 2>&1 || { echo "run $i: resume failed"; mismatched=$((mismatched + 1)); continue; }
  else
    "$jester" train "${learner[@]}" --out "$out" >/dev/null 2>&1
  fi
  losses "$out/metrics.jsonl" >"$work/run-$i.losses"
  if cmp -s "$work/clean.losses" "$work/run-$i.losses"; then
    verdict=identical
  else
    verdict=DIFFERENT; mismatched=$((mismatched + 1))
    diff "$work/clean.losses" "$work/run-$i.losses" | head -5
  fi
  echo "run $i: killed after ${delay} s, resumed: losses $verdict"
done
echo "soak: $runs runs, $kills killed mid-run, $mismatched with other losses than uninterrupted, $corrupt with a corrupt checkpoint"
[[ $mismatched -eq 0 && $corrupt -eq 0 ]]
