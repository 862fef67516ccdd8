#!/usr/bin/env python3
"""open_clip + JEST against plain open_clip, on jester's synthetic shards: the commands a user runs.

Nothing here trains by itself; every step is one of the commands of the README's "JEST in open_clip":

1. `jester data synth` (the headline benchmark: a 20,000-sample noisy pool, a clean curated set, a
   clean held-out set; `--smoke`: the tiny preset) and the held-out set as a CSV with one row per
   distinct tokenised caption (open_clip's retrieval counts only the diagonal as right);
2. the reference: plain `open_clip_train.main` on `curated-strong/`;
3. its cache of the pool: `python -m jester.open_clip.embed --pretrained REF/checkpoints/epoch_N.pt`;
4. per seed, on the pool with the same tiny model: plain open_clip for S steps (`uniform`), plain
   open_clip for the FLOPs JEST spends in S steps (`uniform_flops`: S·(1 + B/3b) steps), and
   `python -m jester.open_clip` (`jest`, f = FILTER) for S steps; open_clip evaluates held-out
   retrieval (`--val-data`) every epoch;
5. a summary (`summary.json`, `summary.md`): R@1 (each direction) at the end, at a third, two thirds
   and all of S steps and at the matching FLOPs; each step's time split into waiting on the loader,
   scoring, selection and open_clip's own work (jester's per-step means and open_clip's `Data (t)`
   and `Batch (t)`); every run's duration (examples/open_clip/jest_runs.py reads the runs back).

    python examples/open_clip_jest.py --out DIR [--seeds 0 1 2] [--steps 450] [--runs uniform jest]
    python examples/open_clip_jest.py --out DIR --report-only     # the summary of finished runs

A run is finished when open_clip has written its last epoch's checkpoint; otherwise the next call
restarts it with `--resume latest` (open_clip keeps the newest epoch checkpoint), so an interrupted
script picks up where it stopped. The model is examples/open_clip/jester-tiny.json (jester's `tiny`
sizes in open_clip: a 2-layer ViT, width 64, patch 4 on 32 px images, mean-pooled; a 2-layer text
transformer, width 64, over open_clip's own BPE; D = 64), from random initialisation: nothing is
downloaded. Requirements: examples/requirements.txt and the `jester` package (`make python`) in the
venv of scripts/with-torch; the `jester` CLI (target/debug/jester, or $JESTER_CLI) makes the data.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLAIN = HERE / "open_clip" / "plain_open_clip.py"
sys.path.insert(0, str(HERE / "open_clip"))
from jest_runs import (
    CONFIG,
    FILTER,
    MODEL,
    RUNS,
    epochs_of,
    flops_ratio,
    names,
    report,
    summarise,
)
from shards_to_csv import shards_to_csv

HEADLINE = ["--set", "benchmark.pool=20000", "--set", "benchmark.curated=4000",
            "--set", "benchmark.eval=1000"]  # fmt: skip


def run(command: list[str], log: Path) -> None:
    print("$", " ".join(command), flush=True)
    with open(log, "a") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"exit {done.returncode}; see {log}:\n{log.read_text()[-3000:]}")


def shard_pattern(folder: Path) -> str:
    """open_clip's brace form of a folder's NNNNN.tar shards."""
    names = sorted(p.stem for p in folder.glob("*.tar"))
    return str(folder / f"{{{names[0]}..{names[-1]}}}.tar")


def make_data(args) -> Path:
    """`jester data synth` (its summary.json is written last: its presence means it finished)."""
    data = args.work / "data"
    if not (data / "summary.json").exists():
        if args.report_only:
            raise SystemExit(f"--report-only: no finished data in {data}")
        cli = os.environ.get("JESTER_CLI", str(HERE.parent / "target" / "debug" / "jester"))
        preset = ["--preset", "tiny"] if args.smoke else HEADLINE
        run([cli, "data", "synth", "--out", str(data), *preset], args.work / "logs" / "data.log")
    return data


def unique_caption_csv(data: Path, work: Path) -> Path:
    """The held-out set as a CSV, keeping the first of rows whose tokenised captions are equal."""
    import open_clip

    open_clip.add_model_config(CONFIG)
    tokenizer = open_clip.get_tokenizer(MODEL)
    path = shards_to_csv(sorted((data / "eval").glob("*.tar")), work / "eval-csv")
    lines = path.read_text().splitlines()
    seen, kept = set(), [lines[0]]
    for line in lines[1:]:
        ids = tuple(tokenizer([line.split("\t", 1)[1]])[0].tolist())
        if ids not in seen:
            seen.add(ids)
            kept.append(line)
    path.write_text("\n".join(kept) + "\n")
    return path


def train_flags(args, data: str, steps: int, seed: int, name: str) -> list[str]:
    """open_clip_train flags: `steps` steps of b in epochs of `args.epoch_steps` steps; the newest
    epoch checkpoint kept (the last one is the run's; the others let it resume)."""
    return [
        "--model", MODEL, "--train-data", data,
        "--train-num-samples", str(args.epoch_steps * args.batch), "--batch-size", str(args.batch),
        "--epochs", str(epochs_of(args, steps)), "--workers", "1", "--device", args.device,
        "--precision", args.precision, "--siglip", "--lr", "1e-3", "--warmup", str(args.warmup),
        "--seed", str(seed), "--save-frequency", "1", "--delete-previous-checkpoint",
        "--log-every-n-steps", "10", "--logs", str(args.work / "runs"), "--name", name,
    ]  # fmt: skip


def finished(run_dir: Path, epochs: int) -> bool:
    return (run_dir / "checkpoints" / f"epoch_{epochs}.pt").exists()


def train(args, command: list[str], name: str, steps: int) -> None:
    """Runs open_clip (plain or with JEST) unless finished; a started run resumes from its newest
    epoch checkpoint (or starts over if it has none), in the same run folder."""
    run_dir = args.work / "runs" / name
    if finished(run_dir, epochs_of(args, steps)):
        return
    if args.report_only:
        raise SystemExit(f"--report-only: {run_dir} has not finished")
    resume = ["--resume", "latest"] if (run_dir / "out.log").exists() else []
    run([*command, *resume], args.work / "logs" / f"{name}.log")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="work folder (data, runs, summary)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=450, help="S, JEST's steps (default 450)")
    p.add_argument("--reference-steps", type=int, default=450)
    p.add_argument("--batch", type=int, default=64, help="b (default 64; B = b / (1 - f))")
    p.add_argument("--epoch-steps", type=int, default=50, help="steps between evaluations")
    p.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS), help="which runs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", help="open_clip's --precision (amp on a GPU)")
    p.add_argument("--smoke", action="store_true", help="tiny data and budget, for tests")
    p.add_argument(
        "--report-only", action="store_true", help="summarise finished runs; train nothing"
    )
    args = p.parse_args()
    if args.smoke:
        args.steps = args.reference_steps = args.epoch_steps = 3
        args.batch, args.seeds = 16, args.seeds[:1]
    args.warmup = max(1, args.steps // 30)
    args.work = args.out.resolve()
    for folder in ("runs", "logs"):
        (args.work / folder).mkdir(parents=True, exist_ok=True)

    data = make_data(args)
    val = unique_caption_csv(data, args.work)
    val_flags = ["--val-data", str(val), "--val-frequency", "1"]
    plain = [sys.executable, str(PLAIN), str(CONFIG)]

    ref = train_flags(args, shard_pattern(data / "curated-strong"), args.reference_steps, 1000,
                      "reference")  # fmt: skip
    train(args, [*plain, *ref, *val_flags], "reference", args.reference_steps)
    checkpoint = (
        args.work / "runs" / "reference" / "checkpoints"
        / f"epoch_{epochs_of(args, args.reference_steps)}.pt"
    )  # fmt: skip
    cache = args.work / "reference-pool.safetensors"
    if not cache.exists():
        if args.report_only:
            raise SystemExit(f"--report-only: no {cache}")
        partial = cache.with_suffix(".partial.safetensors")
        run([sys.executable, "-m", "jester.open_clip.embed", "--model-config", str(CONFIG),
             "--model", MODEL, "--pretrained", str(checkpoint), "--train-data",
             shard_pattern(data / "pool"), "--out", str(partial), "--workers", "1",
             "--device", args.device], args.work / "logs" / "embed.log")  # fmt: skip
        partial.rename(cache)

    pool = shard_pattern(data / "pool")
    # Whole epochs (open_clip evaluates after each): S·(1 + B/3b) rounded to them.
    equal_flops = max(1, round(args.steps * flops_ratio(args.batch) / args.epoch_steps))
    equal_flops *= args.epoch_steps
    steps = {"uniform": args.steps, "uniform_flops": equal_flops, "jest": args.steps}
    jest = [sys.executable, "-m", "jester.open_clip", "--jest-model-config", str(CONFIG),
            "--jest-reference", str(cache), "--jest-filter-ratio", FILTER]  # fmt: skip
    for seed in args.seeds:
        for kind in args.runs:
            flags = train_flags(args, pool, steps[kind], seed, names(seed)[kind])
            command = jest if kind == "jest" else plain
            train(args, [*command, *flags, *val_flags], names(seed)[kind], steps[kind])
    report(args, [summarise(args, seed, steps) for seed in args.seeds], steps)


if __name__ == "__main__":
    main()
