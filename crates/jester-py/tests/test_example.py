"""examples/open_clip_jest.py runs end to end at its --smoke budget: tiny synthetic shards from the
CLI, a reference trained by plain open_clip_train.main, its cache from
`python -m jester.open_clip.embed`, and plain open_clip against `python -m jester.open_clip` with
open_clip's own held-out retrieval; rerun, it trains only what has not finished (resuming it in
the same run folder). Skipped without open_clip's trainer (examples/requirements.txt) or the CLI
binary."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

import jester
from conftest import CLI, REPO
from open_clip_support import require_open_clip, tiny_forward_flops

EXAMPLE = REPO / "examples" / "open_clip_jest.py"
RUNS = ("uniform", "uniform_flops", "jest")


def example(out, *args: str) -> None:
    env = dict(os.environ, JESTER_CLI=str(CLI), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--smoke", "--out", str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"the example exited {done.returncode}:\n{done.stdout[-4000:]}"


def test_open_clip_example_smoke(tmp_path):
    require_open_clip()
    if not CLI.is_file():
        pytest.skip(
            f"jester CLI binary not found at {CLI} (the example makes its data with it): build it "
            "with `scripts/with-torch cargo build -p jester-cli` (or set JESTER_CLI)"
        )
    out = tmp_path / "work"
    example(out)

    summary = json.loads((out / "summary.json").read_text())
    [seed] = summary["seeds"]
    for run in RUNS:
        r1 = seed["r1"][run]
        assert all(0.0 <= r1[k] <= 100.0 for k in ("i2t", "t2i")), run
        assert r1["mean"] == pytest.approx((r1["i2t"] + r1["t2i"]) / 2)
    # Epochs of 3 steps: S = 3 steps, and JEST's FLOPs (1 + B/3b = 8/3 at b = 16, f = 0.8) in
    # plain steps rounded to whole epochs: 3 epochs.
    assert summary["super_batch"] == 80 and summary["steps"]["uniform_flops"] == 9
    assert [len(seed["curves"][run]) for run in RUNS] == [1, 3, 1]
    flops = summary["flops_per_step"]
    assert flops["jest"] / flops["uniform"] == pytest.approx(1 + 5 / 3)
    assert summary["flops_per_example_forward"] == tiny_forward_flops()
    assert seed["flops_step_logged"] == flops["jest"], "the run's own count agrees"
    [point] = seed["points"]
    assert point["steps"] == 3 and point["uniform_flops_steps"] == 9
    split = seed["jest_seconds"]["all"]
    assert split["steps"] == 3
    # Measured times: only that each is reported, as a number (their values depend on the machine).
    times = [split[p] for p in ("wait", "score", "select", "summary", "train", "step")]
    times += [seed["open_clip_seconds"][run]["all"]["batch"] for run in RUNS]
    times += [seed["durations_s"][run] for run in RUNS]
    assert all(isinstance(t, float) and math.isfinite(t) for t in times), times
    assert seed["learnability"]["selected"] > seed["learnability"]["uniform"]
    assert "open_clip + JEST" in (out / "summary.md").read_text()

    cache = jester.ReferenceCache(str(out / "reference-pool.safetensors"))
    assert len(cache) == 1024 and cache.dim == 64
    assert len(json.loads(cache.provenance)["shards"]) == 4

    # An interrupted JEST run (no final checkpoint) is resumed in its own folder; finished runs
    # are left alone; results.jsonl then holds epoch 1 twice, and the curve the last of them.
    runs = out / "runs"
    (runs / "jest-s0" / "checkpoints" / "epoch_1.pt").unlink()
    logs = {run: (runs / run / "out.log").read_text() for run in ("uniform-s0", "reference")}
    example(out)
    assert (runs / "jest-s0" / "checkpoints" / "epoch_1.pt").exists()
    assert "No latest resume checkpoint found" in (runs / "jest-s0" / "out.log").read_text()
    assert all((runs / run / "out.log").read_text() == text for run, text in logs.items())
    results = (runs / "jest-s0" / "checkpoints" / "results.jsonl").read_text().splitlines()
    assert len(results) == 2
    again = json.loads((out / "summary.json").read_text())["seeds"][0]
    assert len(again["curves"]["jest"]) == 1
    assert again["r1"]["jest"] == seed["r1"]["jest"], "the same seeded run, trained again"
