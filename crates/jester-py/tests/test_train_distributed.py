"""Data-parallel `jester train` and `jester embed` under torchrun with 2 gloo ranks (CPU), against
their single-process twins (`--set selection_groups=2`: the same loader shares, quotas and
arithmetic in one process; the repo's docs/ARCHITECTURE.md, "Many processes").

Every process runs with one thread, so the twins do the same arithmetic; the remaining
differences are the order of the gradient sum (all-reduce vs one backward).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import jester

STEPS, BATCH, CHUNKS = 20, 32, 4
COMMON = [
    "--set", "log_every=1",
    "--set", "data.tokenizer_vocab=300",
    "--set", "data.loader.shuffle_buffer=64",
    "--set", "data.loader.workers=1",
    "--set", "seed=3",
]  # fmt: skip
BETA1 = 0.9


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", JESTER_LOG="warn", JESTER_DIST_TIMEOUT="60")
    return env


def jester_py(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m jester ARGS` in one process."""
    done = subprocess.run(
        [sys.executable, "-m", "jester", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"jester {' '.join(args)}:\n{done.stderr}"
    return done


def torchrun(*args: str, ranks: int = 2, extra=(), **kw) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node RANKS -m jester ARGS`, started (not waited for)."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={ranks}", *extra, "-m", "jester", *args,
    ]  # fmt: skip
    kw.setdefault("env", _env())
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def losses(run: Path) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Synthetic scenes, a reference trained on the curated set, and its cached embeddings."""
    root = tmp_path_factory.mktemp("dp")
    bench = root / "bench"
    jester_py("data", "synth", "--preset", "tiny", "--out", str(bench))
    reference = root / "reference"
    jester_py(
        "train", "--data", str(bench / "curated-strong"), "--out", str(reference),
        "--steps", "10", "--batch", "32", *COMMON,
    )  # fmt: skip
    cache = root / "reference.safetensors"
    jester_py(
        "embed", "--model", str(reference), "--data", str(bench / "pool"), "--out", str(cache)
    )
    return {"root": root, "pool": bench / "pool", "reference": reference, "cache": cache}


def jest_args(world, out: Path, *more: str) -> list[str]:
    return [
        "train", "--data", str(world["pool"]), "--out", str(out), "--method", "jest",
        "--reference", str(world["cache"]), "--steps", str(STEPS), "--batch", str(BATCH),
        "--chunks", str(CHUNKS), "--checkpoint-every", "5",
        "--set", "keep_checkpoints=10", *COMMON, *more,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def twins(world):
    """A 2-rank jest run and its single-process twin (same quotas and shares)."""
    two = world["root"] / "two-ranks"
    code, out = finish(torchrun(*jest_args(world, two)))
    assert code == 0, out
    one = world["root"] / "twin"
    jester_py(*jest_args(world, one, "--set", "selection_groups=2"))
    return two, one


def test_two_ranks_train_the_losses_of_the_single_process_twin(twins):
    two, one = twins
    config = json.loads((two / "config.json").read_text())
    assert config["selection_groups"] == 2, "a 2-rank run selects with 2 groups"
    a, b = losses(two), losses(one)
    assert len(a) == len(b) == STEPS
    torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-5, atol=0)
    # The gradient norm before clipping, step by step: gradients summed twice, or averaged
    # instead of summed, would change it by 2x (clipping hides that from the losses).
    norms = [[json.loads(line)["grad_norm"] for line in (run / "metrics.jsonl").open()]
             for run in (two, one)]  # fmt: skip
    torch.testing.assert_close(torch.tensor(norms[0]), torch.tensor(norms[1]), rtol=1e-5, atol=0)
    summary = json.loads((two / "summary.json").read_text())
    assert summary["examples_seen"] == STEPS * BATCH
    assert (
        summary["examples_drawn"]
        == json.loads((one / "summary.json").read_text())["examples_drawn"]
    )
    # Rank 0 alone wrote the folder: one metrics line per step, one set of checkpoints.
    assert sorted(p.name for p in (two / "checkpoints").glob("step-*")) == [
        f"step-{s:09}" for s in (5, 10, 15, 20)
    ]
    state = json.loads((two / "checkpoints" / "step-000000020" / "state.json").read_text())
    assert len(state["other_cursors"]) == 1, "each rank's loader position is saved"
    drawn = state["cursor"]["samples"] + state["other_cursors"][0]["samples"]
    assert state["cursor"]["samples"] * 2 == drawn == summary["examples_drawn"]


@pytest.mark.parametrize(
    ("method", "groups"), [("uniform", 2), ("flexi-jest", 2), ("jest", 4)], ids=str
)
def test_other_methods_and_several_groups_per_rank_match_their_twins(
    world, tmp_path, method, groups
):
    """Uniform (no selection), Flexi-JEST (two resolutions per rank) and 4 groups on 2 ranks."""
    runs = []
    for name in ("two", "one"):
        args = jest_args(world, tmp_path / name, "--set", f"selection_groups={groups}")
        args[args.index("--method") + 1] = method
        args[args.index("--steps") + 1] = "6"
        if name == "two":
            code, text = finish(torchrun(*args))
            assert code == 0, text
        else:
            jester_py(*args)
        runs.append(losses(tmp_path / name))
    torch.testing.assert_close(torch.tensor(runs[0]), torch.tensor(runs[1]), rtol=1e-5, atol=0)


def test_a_failure_on_rank_0_fails_every_rank_with_its_message(world, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "config.json").write_text("{}")  # another run's folder
    code, out = finish(torchrun(*jest_args(world, taken)))
    assert code != 0
    assert "error (rank 1): data-parallel run, rank 0: failed to open the run" in out, out[-3000:]
    assert "error (rank 0): " in out
    assert "already holds a run" in out
    assert (taken / "config.json").read_text() == "{}"
    made = sorted(p.name for p in taken.iterdir() if p.name != ".lock")
    assert made == ["config.json"], "nothing half-made"


def test_first_step_gradients_equal_the_single_process_gradients(world, tmp_path):
    """With clipping off, Adam's first moment after one update is (1 − β1)·g, g the raw
    all-reduced gradient of the global loss: equal to the single-process one, parameter by
    parameter (a gradient summed twice or averaged instead of summed would be 2x or 0.5x), t's and
    b's included — every rank computes their gradient from the whole loss, counted once."""
    runs = {}
    for name, launch in [("two", "torchrun"), ("one", "single")]:
        out = tmp_path / name
        args = jest_args(world, out, "--set", "checkpoint_every=1", "--set", "optim.clip_norm=0")
        args[args.index("--steps") + 1] = "1"
        if launch == "torchrun":
            code, text = finish(torchrun(*args))
            assert code == 0, text
        else:
            jester_py(*args, "--set", "selection_groups=2")
        runs[name] = load_file(
            str(out / "checkpoints" / "step-000000001" / "optimizer.safetensors")
        )
    two, one = runs["two"], runs["one"]
    moments = [k for k in one if k.startswith("m.")]
    assert len(moments) > 10 and set(two) == set(one)
    for key in moments:
        g2, g1 = two[key] / (1 - BETA1), one[key] / (1 - BETA1)
        scale = g1.abs().max().clamp_min(1e-12)
        assert ((g2 - g1).abs().max() / scale) < 1e-5, key
    for key in ("m.log_temperature", "m.bias"):
        assert torch.count_nonzero(two[key]) == 1, f"{key}: a gradient on the distributed run"
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=0)


@pytest.mark.parametrize("method", ["jest", "uniform"])
def test_distillation_on_two_ranks_equals_its_single_process_twin(world, tmp_path, method):
    """KD's term is computed on the same gathered batch as the loss, with the reference's rows
    in the same order: scored ones for JEST, looked up per rank and gathered for uniform."""
    runs = []
    for name in ("two", "one"):
        args = jest_args(world, tmp_path / name, "--set", "distill=1")
        args[args.index("--method") + 1] = method
        args[args.index("--steps") + 1] = "6"
        if name == "two":
            code, text = finish(torchrun(*args))
            assert code == 0, text
        else:
            jester_py(*args, "--set", "selection_groups=2")
        runs.append(tmp_path / name)
    two, one = (losses(run) for run in runs)
    torch.testing.assert_close(torch.tensor(two), torch.tensor(one), rtol=1e-5, atol=0)
    kd = [[json.loads(line)["distill"] for line in (run / "metrics.jsonl").open()]
          for run in runs]  # fmt: skip
    assert all(k > 0 for k in kd[0])
    torch.testing.assert_close(torch.tensor(kd[0]), torch.tensor(kd[1]), rtol=1e-5, atol=0)


def test_a_write_failure_on_rank_0_stops_both_ranks_with_its_message(world, tmp_path):
    """Rank 0 cannot write its step-10 checkpoint (a file stands where its temporary folder
    goes): it fails, and rank 1 stops at the same step naming rank 0's error, rather than
    waiting in the next collective until the timeout."""
    run = tmp_path / "unwritable"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / ".step-000000010.tmp").write_text("in the way")
    code, out = finish(torchrun(*jest_args(world, run)), timeout=120)
    assert code != 0
    assert "error (rank 0): " in out and "step-000000010.tmp" in out, out[-3000:]
    assert "error (rank 1): data-parallel run, rank 0: " in out, out[-3000:]
    assert "step-000000010.tmp" in out.split("error (rank 1): ")[1], out[-3000:]
    assert len(losses(run)) == 10, "both stopped at step 10"


def _kill_rank(process: subprocess.Popen, rank: int) -> int:
    """SIGKILLs torchrun's worker with RANK=rank; returns its pid."""
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(process.pid)], capture_output=True, text=True, check=True
    ).stdout.split()
    for pid in map(int, children):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            os.kill(pid, signal.SIGKILL)
            return pid
    raise AssertionError(f"no worker with RANK={rank} under torchrun {process.pid}")


def _wait_for_step(run: Path, step: int, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= step:
            return
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.05)
    raise AssertionError(f"{run} did not reach step {step}")


def test_a_killed_rank_fails_the_job_naming_it(world, twins, tmp_path):
    run = tmp_path / "killed"
    process = torchrun(*jest_args(world, run, "--set", "data.loader.prefetch=8"))
    _wait_for_step(run, 7, process)
    _kill_rank(process, 1)
    # Ends well within the test's guard (the collective timeout here is 60 s).
    code, out = finish(process, timeout=180)
    assert code != 0
    # jester's own words on the surviving rank (not torchrun's summary of the dead one): torchrun
    # stops it with SIGTERM, or its next collective fails first.
    assert "error (rank 0): " in out, out[-3000:]
    assert (
        "stopped by SIGTERM: torchrun stops every rank when one fails" in out
        or "as it does when another rank has stopped" in out
    ), out[-3000:]
    # The same command with --auto-resume continues from the last checkpoint to the same losses.
    code, out = finish(torchrun(*jest_args(world, run, "--auto-resume")))
    assert code == 0, out
    torch.testing.assert_close(torch.tensor(losses(run)), torch.tensor(losses(twins[0])))


def test_torchrun_max_restarts_resumes_a_killed_run(world, twins, tmp_path):
    run = tmp_path / "restarted"
    # torchrun's agent otherwise shares its rendezvous store with the workers, and a restarted
    # gloo group can read the dead attempt's addresses (pytorch/pytorch#135712).
    process = torchrun(
        *jest_args(world, run, "--auto-resume"),
        extra=["--max-restarts=1"],
        env={**_env(), "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"},
    )
    _wait_for_step(run, 12, process)
    _kill_rank(process, 1)
    code, out = finish(process)
    assert code == 0, out
    torch.testing.assert_close(torch.tensor(losses(run)), torch.tensor(losses(twins[0])))


def test_a_two_rank_run_resumes_in_one_process(twins, tmp_path):
    """World size 1 divides the run's 2 groups: one process takes over both loader shares."""
    two, _ = twins
    run = tmp_path / "taken-over"
    shutil.copytree(two, run)
    for name in ("model.safetensors", "summary.json"):
        (run / name).unlink()
    for step in (15, 20):
        shutil.rmtree(run / "checkpoints" / f"step-{step:09}")
    (run / "checkpoints" / "latest").write_text("step-000000010")
    jester_py("train", "--resume", str(run))
    torch.testing.assert_close(
        torch.tensor(losses(run)), torch.tensor(losses(two)), rtol=1e-5, atol=0
    )


def test_resuming_on_a_world_size_that_does_not_divide_the_groups_is_refused(world):
    # The reference run was trained by one process (one group): two ranks cannot split it.
    code, out = finish(torchrun("train", "--resume", str(world["reference"])))
    assert code != 0
    assert "selects in 1 groups" in out and "not 2" in out, out[-3000:]


def test_two_rank_embed_equals_the_one_process_cache(world, tmp_path):
    out = tmp_path / "two.safetensors"
    args = ["embed", "--model", str(world["reference"]), "--data", str(world["pool"])]
    code, text = finish(torchrun(*args, "--out", str(out), "--batch", "64"))
    assert code == 0, text
    caches = []
    for path in (world["cache"], out):
        with safe_open(str(path), "pt") as f:
            keys = json.loads(f.metadata()["keys"])
            provenance = json.loads(f.metadata()["provenance"])
            rows = {k: i for i, k in enumerate(keys)}
            caches.append((rows, f.get_tensor("image"), f.get_tensor("text"), provenance))
    (rows1, image1, text1, prov1), (rows2, image2, text2, prov2) = caches
    assert len(rows1) > 0 and sorted(rows1) == sorted(rows2)
    assert prov1 == prov2, "computed from the same shards, weights and tokenizer"
    order1 = torch.tensor([rows1[k] for k in rows1])
    order2 = torch.tensor([rows2[k] for k in rows1])
    torch.testing.assert_close(image1[order1], image2[order2], rtol=0, atol=1e-5)
    torch.testing.assert_close(text1[order1], text2[order2], rtol=0, atol=1e-5)
    assert len(jester.ReferenceCache(str(out))) == len(rows1)
