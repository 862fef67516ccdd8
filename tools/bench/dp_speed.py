"""Data-parallel speed on one machine: the same `jest` run as 2 torchrun ranks x 1 thread (gloo)
and as 1 process x 2 threads (plain, and the 2-group twin), side by side in one invocation.

    scripts/with-torch python tools/bench/dp_speed.py --work /tmp/dp-speed [--steps 30]

Needs the package (`make python`). Prints a Markdown table: examples trained per second and the
seconds per step by phase from each run's summary.json (load, score = local forward, communicate
= time inside collectives, waiting for the slower rank included, select, step = update minus
communication). The first step of every run is left out (warm-up) by timing steps 2..N from
metrics.jsonl's per-step seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

PHASES = ("load", "score", "communicate", "select", "step")


def run(command: list[str], threads: int, extra_env: dict | None = None) -> float:
    env = dict(
        os.environ, OMP_NUM_THREADS=str(threads), JESTER_LOG="warn", **(extra_env or {})
    )
    start = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - start


def jester(*args: str) -> list[str]:
    return [sys.executable, "-m", "jester", *args]


def per_step(run_dir: Path) -> dict[str, float]:
    """Mean seconds per step by phase over steps 2..N (metrics.jsonl has one line per step)."""
    lines = [
        json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()
    ][1:]
    return {
        p: sum(line["seconds_per_step"].get(p, 0.0) for line in lines) / len(lines)
        for p in PHASES
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    bench = work / "bench"
    common = ["--set", "log_every=1", "--set", "data.tokenizer_vocab=300"]
    if not bench.exists():
        run(jester("data", "synth", "--preset", "tiny", "--set", "benchmark.pool=4000",
                   "--out", str(bench)), 2)  # fmt: skip
    reference, cache = work / "reference", work / "reference.safetensors"
    if not cache.exists():
        run(jester("train", "--data", str(bench / "curated-strong"), "--out", str(reference),
                   "--steps", "100", "--batch", "64", *common), 2)  # fmt: skip
        run(jester("embed", "--model", str(reference), "--data", str(bench / "pool"),
                   "--out", str(cache)), 2)  # fmt: skip

    def train_args(out: Path, *more: str) -> list[str]:
        return ["train", "--data", str(bench / "pool"), "--out", str(out), "--method", "jest",
                "--reference", str(cache), "--steps", str(args.steps), "--batch",
                str(args.batch), *common, *more]  # fmt: skip

    runs = {}
    for name in ("1 process x 2 threads", "1 process x 2 threads, 2 groups (twin)",
                 "2 ranks x 1 thread (torchrun, gloo)"):  # fmt: skip
        out = work / name.split(" (")[0].replace(" ", "-").replace(",", "")
        if out.exists():
            subprocess.run(["rm", "-rf", str(out)], check=True)
        if name.startswith("2 ranks"):
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc-per-node=2", "-m", "jester", *train_args(out)]  # fmt: skip
            wall = run(command, 1)
        elif "twin" in name:
            wall = run(jester(*train_args(out, "--set", "selection_groups=2")), 2)
        else:
            wall = run(jester(*train_args(out)), 2)
        runs[name] = (per_step(out), wall)

    print(
        f"`tools/bench/dp_speed.py --steps {args.steps} --batch {args.batch}`: tiny preset, jest,"
    )
    print(
        f"b = {args.batch}, f = 0.8, cached reference; {platform.node()}, {os.cpu_count()} CPUs,"
    )
    print(
        f"{time.strftime('%Y-%m-%d')}. Seconds per step, mean of steps 2..{args.steps}.\n"
    )
    print(
        "| run | examples/s | "
        + " | ".join(PHASES)
        + " | step total | wall (s, incl. start) |"
    )
    print("|---|---|" + "---|" * len(PHASES) + "---|---|")
    for name, (seconds, wall) in runs.items():
        total = sum(seconds.values())
        cells = " | ".join(f"{seconds[p]:.3f}" for p in PHASES)
        print(
            f"| {name} | {args.batch / total:.0f} | {cells} | {total:.3f} | {wall:.0f} |"
        )


if __name__ == "__main__":
    main()
