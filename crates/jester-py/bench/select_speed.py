"""`jester.select` from Python against the CLI's selection and the NumPy port of the paper's
Algorithm 1, side by side in one run (BENCHMARKS.md, "Python").

    scripts/with-torch python crates/jester-py/bench/select_speed.py [--out FILE]

The CLI's numbers come from `jester bench select --numpy` (its own clustered embeddings); the Python
call selects on random unit rows of the same shape (time does not depend on the values), with the
same B, b, N, D and threads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time

import torch

import jester

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--super-batch", type=int, default=20_480)
    parser.add_argument("--batch", type=int, default=4_096)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write the numbers as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "select.json")
        subprocess.run(
            [
                os.path.join(REPO, "scripts", "with-torch"),
                "cargo",
                "run",
                "--quiet",
                "-p",
                "jester-cli",
                "--",
                "bench",
                "select",
                "--numpy",
                "--device",
                "cpu",
                "--super-batch",
                str(args.super_batch),
                "--dim",
                str(args.dim),
                "--filter-ratio",
                str(1 - args.batch / args.super_batch),
                "--chunks",
                str(args.chunks),
                "--repeats",
                str(args.repeats),
                "--out",
                report,
            ],
            check=True,
            cwd=REPO,
        )
        with open(report) as f:
            cli = json.load(f)

    g = torch.Generator().manual_seed(0)

    def unit(n: int, d: int) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)

    learner = jester.Embeddings(
        unit(args.super_batch, args.dim), unit(args.super_batch, args.dim), 10.0, -10.0
    )
    reference = jester.Embeddings(
        unit(args.super_batch, args.dim), unit(args.super_batch, args.dim), 10.0, -10.0
    )
    times = []
    for repeat in range(args.repeats + 1):
        start = time.perf_counter()
        jester.select(
            learner, reference, cli["batch"], chunks=args.chunks, seed=repeat, summary=False
        )
        if repeat > 0:  # the first is the warm-up, as in the CLI's benchmark
            times.append(time.perf_counter() - start)
    python_best = min(times)
    numbers = {
        "super_batch": args.super_batch,
        "batch": cli["batch"],
        "dim": args.dim,
        "chunks": args.chunks,
        "threads": torch.get_num_threads(),
        "cli_best_seconds": cli["select_best_seconds"],
        "python_best_seconds": python_best,
        "python_seconds": times,
        "python_over_cli": python_best / cli["select_best_seconds"],
        "numpy_seconds": (cli.get("numpy") or {}).get("seconds"),
    }
    print(json.dumps(numbers, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(numbers, f, indent=2)


if __name__ == "__main__":
    main()
