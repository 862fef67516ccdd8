"""jester's per-step numbers where open_clip users look: a log line next to open_clip's (its
``out.log``), TensorBoard and W&B scalars under ``jest/`` at open_clip's own step, and
``jest.jsonl`` in the run folder."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass

try:
    import wandb
except ImportError:  # open_clip's trainer makes it optional too
    wandb = None

log = logging.getLogger("jester.open_clip")

# A step's phases, timed on every step (loop.SelectingLoader).
PHASES = ("wait", "score", "select", "summary", "train")


@dataclass
class StepRecord:
    """A logged step of open_clip's (its step number: optimiser steps, --accum-freq K super-batches
    each). Seconds are rank 0's, each the mean per step over the ``steps_timed`` steps since the
    previous log line, as open_clip's ``Data (t)`` and ``Batch (t)`` are; FLOPs are the whole
    step's over all ranks: a trained example costs 3F, a scored one F (and F_ref online)."""

    step: int
    epoch: int
    loss: float | None = None  # open_clip's loss on rank 0, as its own log line shows it
    learnability_selected: float | None = None  # mean per example, of the trained batch
    learnability_uniform: float | None = None  # of a uniform batch of the super-batch
    wait_seconds: float = 0.0  # blocked on open_clip's data loader, and the copy to the device
    score_seconds: float = 0.0  # learner (and online reference) embeddings, cache lookups
    select_seconds: float = 0.0  # jester's selection, all-gathers included
    summary_seconds: float = 0.0  # the learnability summary (B² pairs; on logged steps only)
    train_seconds: float = 0.0  # open_clip's own step: forward, loss, backward, optimiser, logs
    steps_timed: int = 0  # the steps the means are over
    flops_step: float = 0.0
    flops_uniform_step: float = 0.0  # what plain open_clip spends on the same step
    flops_total: float = 0.0
    examples_drawn: int = 0  # global, cumulative
    examples_trained: int = 0


class MetricsLog:
    """Writes StepRecords (rank 0: log line, scalars, jest.jsonl; every rank with ``log_keys``:
    each super-batch's candidate and selected keys to jest-keys/rank{r}.jsonl)."""

    def __init__(self, args, tb_writer, *, log_keys: bool):
        self.args, self.tb_writer = args, tb_writer
        # open_clip's own test for "no logs" (main.py: args.logs.lower() != 'none').
        saved = bool(args.logs) and args.logs.lower() != "none"
        folder = os.path.join(args.logs, args.name) if saved else None
        self.master = args.rank == 0
        self.jsonl = os.path.join(folder, "jest.jsonl") if folder and self.master else None
        self.keys_path = None
        if log_keys and folder:
            os.makedirs(os.path.join(folder, "jest-keys"), exist_ok=True)
            self.keys_path = os.path.join(folder, "jest-keys", f"rank{args.rank}.jsonl")

    def write_keys(self, step: int, batch: int, candidates: list[str], selected: list[str]):
        """One super-batch's keys on this rank: ``batch`` numbers super-batches (it seeds the
        selection), ``step`` is open_clip's step it trains in."""
        record = {"step": step, "batch": batch, "candidates": candidates, "selected": selected}
        with open(self.keys_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def write(self, record: StepRecord) -> None:
        if not self.master:
            return
        fields = asdict(record)
        if self.jsonl:
            with open(self.jsonl, "a") as f:
                f.write(json.dumps(fields) + "\n")
        log.info(line(record))
        scalars = {
            f"jest/{k}": v
            for k, v in fields.items()
            if k not in ("step", "epoch", "loss") and v is not None
        }
        if self.tb_writer is not None:
            for name, value in scalars.items():
                self.tb_writer.add_scalar(name, value, record.step)
        if getattr(self.args, "wandb", False) and wandb is not None:
            wandb.log(scalars, step=record.step)


def line(r: StepRecord) -> str:
    """The log line, e.g. ``JEST step 12 (epoch 0): learnability 0.52 selected, 0.11 uniform |
    s/step over 10: wait 0.002 score 0.151 select 0.012 summary 0.003 train 0.120 | FLOPs
    2.7e+09/step (2.67x uniform), 3.5e+10 total``."""
    parts = [f"JEST step {r.step} (epoch {r.epoch}):"]
    if r.learnability_selected is not None:
        parts.append(
            f"learnability {r.learnability_selected:.4g} selected, "
            f"{r.learnability_uniform:.4g} uniform |"
        )
    parts.append(
        f"s/step over {r.steps_timed}: wait {r.wait_seconds:.3f} score {r.score_seconds:.3f} "
        f"select {r.select_seconds:.3f} summary {r.summary_seconds:.3f} "
        f"train {r.train_seconds:.3f} |"
    )
    ratio = r.flops_step / r.flops_uniform_step if r.flops_uniform_step else float("nan")
    parts.append(f"FLOPs {r.flops_step:.3g}/step ({ratio:.2f}x uniform), {r.flops_total:.3g} total")
    return " ".join(parts)
