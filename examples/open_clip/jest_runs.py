"""The runs of examples/open_clip_jest.py read back: their names, steps and FLOPs per step, open_clip's
held-out retrieval curves, the step-time split jester logs, open_clip's own `Data (t)` and
`Batch (t)`, and the summary (`summary.json`, `summary.md`) over seeds. Imported by the driver;
it trains nothing."""

from __future__ import annotations

import json
import math
import re
import statistics
from datetime import datetime
from fractions import Fraction
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "jester-tiny.json"
MODEL = "jester-tiny"
FILTER = "0.8"  # JEST's f, as passed to --jest-filter-ratio; B and the FLOPs ratio follow from it
RUNS = ("uniform", "uniform_flops", "jest")


def super_batch(b: int) -> int:
    """B = ceil(b / (1 - f)), as `python -m jester.open_clip` computes it (f exactly as typed)."""
    f = Fraction(FILTER)
    return math.ceil(b / (1 - f))


def flops_ratio(b: int) -> Fraction:
    """A JEST step's FLOPs over a plain one's: 3F·b trained + F·B scored, over 3F·b."""
    return 1 + Fraction(super_batch(b), 3 * b)


def epochs_of(args, steps: int) -> int:
    return max(1, steps // args.epoch_steps)


def names(seed: int) -> dict[str, str]:
    return {"uniform": f"uniform-s{seed}", "uniform_flops": f"uniform-flops-s{seed}",
            "jest": f"jest-s{seed}"}  # fmt: skip


# -- reading the runs ------------------------------------------------------------------------


def val_curve(run: Path) -> dict[int, dict]:
    """open_clip's held-out metrics by epoch (checkpoints/results.jsonl; a resumed run appends
    epochs again: the last record wins)."""
    lines = (run / "checkpoints" / "results.jsonl").read_text().splitlines()
    return {int(m["epoch"]): m for m in map(json.loads, lines)}


def r1(metrics: dict) -> dict[str, float]:
    """R@1 in %: image→text, text→image and their mean."""
    i2t, t2i = 100 * metrics["image_to_text_R@1"], 100 * metrics["text_to_image_R@1"]
    return {"i2t": i2t, "t2i": t2i, "mean": (i2t + t2i) / 2}


LINE = re.compile(
    r"^(\S+) \| INFO \| Train Epoch: (\d+) \[\s*(\d+)/\d+ \(\s*\d+%\)\] "
    r"Data \(t\): ([0-9.]+) Batch \(t\): ([0-9.]+)"
)
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d,\d\d:\d\d:\d\d) \|")
START = re.compile(r"\| Running (with a single process|in distributed mode)")


def open_clip_times(run: Path, batch: int) -> dict:
    """open_clip's own `Data (t)` and `Batch (t)`: each log line holds the means over the steps
    since the previous one, so weighted by those steps they give the mean over every step;
    `steady` leaves out each epoch's first step (its own window: the loader's start)."""
    windows: dict[tuple[int, int], tuple[float, float]] = {}
    for line in (run / "out.log").read_text().splitlines():
        m = LINE.match(line)
        if m:
            epoch, done = int(m[2]), int(m[3]) // batch
            windows[(epoch, done)] = (float(m[4]), float(m[5]))  # a resumed epoch: last wins
    out = {}
    for part, keep in (("all", lambda prev: True), ("steady", lambda prev: prev > 0)):
        data = batch_t = n = 0.0
        prev_of = {}
        for epoch, done in sorted(windows):
            prev = prev_of.get(epoch, 0)
            prev_of[epoch] = done
            if keep(prev):
                d, t = windows[(epoch, done)]
                data, batch_t, n = (
                    data + d * (done - prev),
                    batch_t + t * (done - prev),
                    n + done - prev,
                )
        out[part] = {"data": data / n, "batch": batch_t / n, "steps": int(n)} if n else None
    return out


def duration_seconds(run: Path) -> float:
    """Wall time of the run's open_clip processes (start-up, training, evaluations), from its log's
    time stamps; a resumed run's segments are summed."""
    segments: list[list[datetime]] = []
    for line in (run / "out.log").read_text().splitlines():
        stamp = STAMP.match(line)
        if not stamp:
            continue
        t = datetime.strptime(stamp[1], "%Y-%m-%d,%H:%M:%S")
        if START.search(line) or not segments:
            segments.append([t, t])
        segments[-1][1] = t
    return sum((end - start).total_seconds() for start, end in segments)


def jest_times(run: Path, steps_per_epoch: int) -> dict | None:
    """jester's split of a JEST step (jest.jsonl: each record the means over `steps_timed` steps),
    over every step and in steady state (without each epoch's first step); None for a log that
    predates per-step timing (it sampled single steps)."""
    records = {r["step"]: r for r in map(json.loads, (run / "jest.jsonl").open())}
    if not records or "steps_timed" not in next(iter(records.values())):
        return None
    phases = ("wait", "score", "select", "summary", "train")
    out = {}
    for part in ("all", "steady"):
        kept = [r for r in records.values()
                if part == "all" or r["step"] % steps_per_epoch != 0]  # fmt: skip
        n = sum(r["steps_timed"] for r in kept)
        out[part] = {p: sum(r[f"{p}_seconds"] * r["steps_timed"] for r in kept) / n for p in phases}
        out[part]["step"] = sum(out[part][p] for p in phases)
        out[part]["steps"] = n
    return out


def model_flops() -> int:
    """F, one example's forward through the tiny model, counted as jester.open_clip counts it."""
    import open_clip
    import torch
    from jester.open_clip.scoring import forward_flops

    open_clip.add_model_config(CONFIG)
    model = open_clip.create_model(MODEL, device="cpu")
    size = model.visual.image_size
    return forward_flops(
        model, torch.zeros(1, 3, *size), torch.zeros(1, model.context_length, dtype=torch.long)
    )


def summarise(args, seed: int, steps: dict[str, int]) -> dict:
    runs = args.work / "runs"
    name = names(seed)
    kinds = [k for k in RUNS if (runs / name[k] / "checkpoints" / "results.jsonl").exists()]
    curves = {k: val_curve(runs / name[k]) for k in kinds}
    out: dict = {
        "seed": seed,
        "r1": {k: r1(c[max(c)]) for k, c in curves.items()},
        "curves": {k: {e: r1(m)["mean"] for e, m in sorted(c.items())} for k, c in curves.items()},
        "durations_s": {k: duration_seconds(runs / name[k]) for k in kinds},
        "open_clip_seconds": {k: open_clip_times(runs / name[k], args.batch) for k in kinds},
    }
    # At a third, two thirds and all of S steps, and at the FLOPs of those JEST steps.
    epochs = epochs_of(args, args.steps)
    ratio = flops_ratio(args.batch)
    points = []
    for e in sorted({max(1, round(epochs * k / 3)) for k in (1, 2, 3)}):
        point = {"steps": e * args.epoch_steps}
        for kind in ("uniform", "jest"):
            if kind in curves and e in curves[kind]:
                point[kind] = r1(curves[kind][e])
        matched = round(e * ratio)
        if "uniform_flops" in curves and matched in curves["uniform_flops"]:
            point["uniform_flops_steps"] = matched * args.epoch_steps
            point["uniform_flops"] = r1(curves["uniform_flops"][matched])
        points.append(point)
    out["points"] = points
    if "jest" in kinds:
        run = runs / name["jest"]
        log = [json.loads(line) for line in (run / "jest.jsonl").open()]
        out["jest_seconds"] = jest_times(run, args.epoch_steps)
        out["learnability"] = {
            "selected": statistics.mean(r["learnability_selected"] for r in log),
            "uniform": statistics.mean(r["learnability_uniform"] for r in log),
        }
        out["flops_step_logged"] = log[-1]["flops_step"]
    return out


# -- the report ------------------------------------------------------------------------------


def report(args, results: list[dict], steps: dict[str, int]) -> None:
    f = model_flops()
    b, big = args.batch, super_batch(args.batch)
    flops = {"uniform": 3 * f * b, "uniform_flops": 3 * f * b, "jest": 3 * f * b + f * big}
    kinds = [k for k in RUNS if all(k in r["r1"] for r in results)]
    label = {"uniform": "plain open_clip", "uniform_flops": "plain open_clip, JEST's FLOPs",
             "jest": f"open_clip + JEST, f = {FILTER}"}  # fmt: skip

    def cell(values: list[float]) -> str:
        mean = statistics.mean(values)
        return (
            f"{mean:.1f} ({min(values):.1f}–{max(values):.1f})"
            if len(values) > 1
            else f"{mean:.1f}"
        )

    def per_seed(r1s: dict) -> str:
        return f"{r1s['mean']:.1f} ({r1s['i2t']:.1f} / {r1s['t2i']:.1f})"

    seeds = [r["seed"] for r in results]
    lines = [
        (
            f"Held-out R@1 %, mean of image→text and text→image (per seed: i→t / t→i); b = {b}, "
            f"B = {big}, F = {f:,} FLOPs per example forward:"
        ),
        "",
        "| run | steps | FLOPs | " + " | ".join(f"seed {s}" for s in seeds) + " | mean (range) |",
        "|---|---|---|" + "---|" * len(seeds) + "---|",
    ]
    for k in kinds:
        row = [label[k], f"{steps[k]:,}", f"{steps[k] * flops[k] / 1e12:.2f} T"]
        row += [per_seed(r["r1"][k]) for r in results]
        row.append(cell([r["r1"][k]["mean"] for r in results]))
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Along the way (R@1 %, mean over seeds of the two directions' mean):",
        "",
        (
            "| JEST steps | plain open_clip, same steps | open_clip + JEST | plain open_clip, same "
            "FLOPs (its steps) |"
        ),
        "|---|---|---|---|",
    ]

    def value(at: list[dict], kind: str) -> str:
        vals = [p[kind]["mean"] for p in at if kind in p]
        return cell(vals) if len(vals) == len(at) else "—"

    for i, point in enumerate(results[0]["points"]):
        at = [r["points"][i] for r in results]
        matched = point.get("uniform_flops_steps")
        lines.append(
            f"| {point['steps']} | {value(at, 'uniform')} | {value(at, 'jest')} | "
            f"{value(at, 'uniform_flops')}{f' ({matched})' if matched else ''} |"
        )
    lines += [
        "",
        (
            "Step time, seconds (mean over seeds; jester's split: every step's time, window means "
            "weighted by their steps; open_clip's `Data (t)` / `Batch (t)` likewise; steady: "
            "without each epoch's first step):"
        ),
        "",
    ]
    for part in ("all", "steady"):
        if "jest" in kinds and all(r["jest_seconds"] for r in results):
            split = {p: statistics.mean(r["jest_seconds"][part][p] for r in results)
                     for p in ("wait", "score", "select", "summary", "train", "step")}  # fmt: skip
            lines.append(
                f"- {part}: JEST step {split['step']:.3f} = wait {split['wait']:.3f} + score "
                f"{split['score']:.3f} + select {split['select']:.3f} + summary "
                f"{split['summary']:.3f} + open_clip's own {split['train']:.3f}"
            )
        for k in kinds:
            t = [r["open_clip_seconds"][k][part] for r in results]
            if all(t):
                lines.append(
                    f"- {part}: {label[k]}: open_clip's Data (t) "
                    f"{statistics.mean(x['data'] for x in t):.3f}, Batch (t) "
                    f"{statistics.mean(x['batch'] for x in t):.3f}"
                )
    if "jest" in kinds and "uniform" in kinds:
        ratio = statistics.mean(
            r["open_clip_seconds"]["jest"]["all"]["batch"]
            / r["open_clip_seconds"]["uniform"]["all"]["batch"]
            for r in results
        )
        lines.append(
            f"- a JEST step took {ratio:.2f}× a plain step's Batch (t) for "
            f"{float(flops_ratio(b)):.2f}× its FLOPs"
        )
    lines += ["", "Durations (open_clip's log, start-up and evaluations included), minutes:", ""]
    for k in kinds:
        minutes = [r["durations_s"][k] / 60 for r in results]
        lines.append(f"- {label[k]}: " + ", ".join(f"{m:.1f}" for m in minutes))
    summary = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "filter_ratio": FILTER,
        "super_batch": big,
        "flops_per_example_forward": f,
        "flops_per_step": flops,
        "steps": steps,
        "seeds": results,
    }
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.work / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.work / 'summary.json'} and summary.md")
