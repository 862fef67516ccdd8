"""Per-step cost of data-parallel JEST as jester implements it: a model, not a measurement.

Prints a Markdown section (communication bytes and times per rank, FLOPs per rank, and the
replicated selection against a sharded alternative) for world sizes W = 1 ... 1,024.

  python3 tools/bench/dp_cost.py > /tmp/dp_cost.md

What is modelled follows crates/jester/src/train/step.rs (one data-parallel step):
  1. each rank embeds its B/W candidates (learner forward, no grad) and all-gathers learner and
     reference image + text embeddings (4 tensors of [B/W, D] f32);
  2. every rank runs the same joint selection over all B (`select_grouped`, not sharded);
  3. each rank trains its b/W rows, all-gathers the trained image + text embeddings
     (`gather_for_loss`) and computes the full b x b sigmoid loss;
  4. gradients are all-reduced in buckets of 16 Mi f32 elements (collective/group.rs), after
     the backward pass (no overlap), then the noise counts are all-gathered as bytes.
FLOP counts mirror crates/jester/src/flops.rs (matrix products only, 2 FLOPs per multiply-add,
training = 3x forward); the CPU selection time is BENCHMARKS.md's "Python: jester.select" table.
Standard library only (and the built `jester` CLI, for the preset's forward FLOPs).
"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from presets import presets  # noqa: E402

WORLDS = (1, 2, 8, 64, 256, 1024)
F32 = 4  # bytes
NODE = 8  # ranks per NVLink domain
LINKS = {  # name: (bandwidth per GPU in bytes/s, latency per collective in s)
    "NVLink": (300e9, 20e-6),
    "IB": (25e9, 50e-6),
}
RATE = 400e12  # accelerator FLOP/s, bf16 dense (H100/H200 class), at 100 % utilisation
F32_GEMM_H100 = (
    48e12  # BENCHMARKS.md: measured f32 2048^3 GEMM on the H100, 46-49 TFLOP/s
)
BUCKET = 16 << 20  # gradient bucket, elements (collective/group.rs)
# Paper scale (arXiv:2406.17711: b = 32,768 at f = 0.8); P assumed, SigLIP ViT-B/16-like.
PAPER = {"B": 163_840, "b": 32_768, "D": 768, "N": 16, "P": 200e6}
# Repo scale: BENCHMARKS.md, jester.select on the 2-vCPU VM: 1.362-1.403 s (CLI 1.399 s).
CPU = {"B": 20_480, "b": 4_096, "D": 256, "N": 16, "seconds": 1.38}


def b16_forward() -> float:
    """Forward FLOPs of one example of the `b16` preset, both towers, as crates/jester/src/flops.rs
    counts them (read from `jester bench flops`, presets.py)."""
    row = presets(["b16"])["b16"]
    return row["image_forward"] + row["text_forward"]


def selection_flops(b: int, big: int, d: int, models: int = 2) -> float:
    """flops.rs `selection`: row + column blocks of each chosen example per model, + diagonal."""
    return models * (4 * b * big * d + 2 * big * d)


def link(w: int) -> tuple[str, float, float]:
    name = "NVLink" if w <= NODE else "IB"
    return (name, *LINKS[name])


def frac(w: int) -> float:
    """Share of an all-gathered buffer a rank receives (ring / bus bandwidth)."""
    return (w - 1) / w


def replicated_row(w: int, s: dict, fwd: float) -> dict:
    big, b, d, p = s["B"], s["b"], s["D"], s["P"]
    gather_score = frac(w) * 4 * big * d * F32
    gather_loss = frac(w) * 2 * b * d * F32
    reduce = 2 * frac(w) * p * F32
    # 4 scoring gathers, 2 loss gathers, the gradient buckets, 2 for the noise-count bytes.
    calls = 4 + 2 + math.ceil(p / BUCKET) + 2 if w > 1 else 0
    _, bw, lat = link(w)
    comm = (gather_score + gather_loss + reduce) / bw + calls * lat
    score_fwd = big / w * fwd
    select = selection_flops(b, big, d)
    towers = 3 * (b / w) * fwd
    # Full logits forward on every rank + the backward of the rank's own (live) slice.
    loss = 2 * b * b * d + 4 * (b / w) * b * d
    compute = score_fwd + select + towers + loss
    return {
        "gs": gather_score,
        "gl": gather_loss,
        "ar": reduce,
        "comm": comm,
        "fwd": score_fwd,
        "sel": select,
        "tow": towers,
        "loss": loss,
        "share": select / compute,
        "step": compute / RATE + comm,
    }


def sharded(w: int, replicated_s: float, big: int, chunks: int) -> float:
    """Each rank scores its B/w rows; per chunk one all-gather of B f32 (scores + mask)."""
    if w == 1:
        return replicated_s
    _, bw, lat = link(w)
    return replicated_s / w + chunks * (lat + frac(w) * big * F32 / bw)


def pays(times: list[tuple[int, float, float]]) -> str:
    ws = [w for w, rep, sh in times if w > 1 and sh < rep]
    if not ws:
        return "never at the W listed"
    return "at W = " + ", ".join(f"{w:,}" for w in ws)


def main() -> None:
    fwd = b16_forward()
    s = PAPER
    sel_paper = selection_flops(s["b"], s["B"], s["D"])
    sel_cpu = selection_flops(CPU["b"], CPU["B"], CPU["D"])
    mb, tf = 1e6, 1e12
    out = []
    add = out.append
    add("### Data-parallel traffic and cost, modelled (W up to 1,024)")
    add("")
    add(
        "Every number below is **modelled** by `python3 tools/bench/dp_cost.py`, not "
        "measured; only the inputs quoted from BENCHMARKS.md were measured. Assumptions:"
    )
    add("")
    add(
        "- Step as in `train/step.rs`: scoring all-gather of 4·B·D f32 (learner + cached "
        "reference), selection replicated over all B on every rank, loss all-gather of "
        "2·b·D f32 and the full b×b loss on every rank, one bucketed gradient all-reduce "
        "(2·(W−1)/W·P·4 B); 4 + 2 + 2 (noise counts) + ⌈P/16 Mi⌉ blocking collectives, no "
        "overlap. Selection share = selection / (scoring fwd + selection + train + loss)."
    )
    add(
        "- Ring / bus-bandwidth model: a rank receives (W−1)/W of a gathered buffer. Links: "
        "NVLink-class 300 GB/s per GPU, 20 µs per collective, for W ≤ 8; InfiniBand 25 GB/s "
        "per GPU, 50 µs, for W > 8 (IB-bound). Flat latency per collective (a ring's grows "
        "with W)."
    )
    add(
        f"- FLOPs as `flops.rs` (matrix products, 2 per multiply-add, training 3× forward). "
        f"Forward of the `b16` preset (ViT-B/16 224 px + 12×768 text, 64 tokens): "
        f"{fwd / 1e9:.1f} GFLOP per example. Selection: 2 models · (4·b·B·D + 2·B·D) = "
        f"{sel_paper / tf:.1f} TFLOP at paper scale, {sel_cpu / 1e9:.1f} GFLOP at repo "
        f"scale (BENCHMARKS.md counts 161.1 GFLOP executed: the last chunk's blocks are "
        f"skipped)."
    )
    add(
        "- Loss per rank: 2·b²·D (all logits) + 4·(b/W)·b·D (backward of the own slice); "
        "softplus over b² logits not counted. Scoring forward over B/W per rank, reference "
        "cached."
    )
    add(
        f"- Paper scale: B = {s['B']:,}, b = {s['b']:,} (f = 0.8), D = {s['D']}, "
        f"N = {s['N']}, P ≈ 200 M (assumed SigLIP B/16-like; the repo's `b16` preset has "
        f"172 M)."
    )
    add(
        "- 400 TFLOP/s bf16 dense (H100/H200 class) at 100 % utilisation, so times are lower "
        "bounds (BENCHMARKS.md measures 18–27 % MFU for `b16` in bf16)."
    )
    add(
        f"- The repo's selection runs on f32 embeddings: at the H100's measured f32 GEMM rate "
        f"(~48 TFLOP/s) it would take {RATE / F32_GEMM_H100:.1f}× the selection times below, "
        f"which only moves sharding's pay-off earlier."
    )
    add(
        f"- Repo scale: B = {CPU['B']:,}, b = {CPU['b']:,}, D = {CPU['D']}, N = {CPU['N']}: "
        f"selection measured at 1.36–1.40 s on the 2-vCPU VM (BENCHMARKS.md); taken as "
        f"{CPU['seconds']} s, GEMM-bound, so 1/W of it per rank when sharded (same link "
        f"tiers)."
    )
    add("")
    add(
        "**(a) Paper scale, replicated selection (as implemented), per rank per step, "
        "modelled**"
    )
    add("")
    add(
        "| W | link | scoring gather MB | loss gather MB | grad all-reduce MB | comm ms "
        "| scoring fwd TFLOP | selection TFLOP | train TFLOP (3×fwd) | loss TFLOP "
        "| selection share of compute | step s (compute + comm) |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for w in WORLDS:
        r = replicated_row(w, s, fwd)
        name = link(w)[0] if w > 1 else "—"
        add(
            f"| {w:,} | {name} | {r['gs'] / mb:,.0f} | {r['gl'] / mb:,.0f} "
            f"| {r['ar'] / mb:,.0f} | {r['comm'] * 1e3:,.1f} | {r['fwd'] / tf:,.2f} "
            f"| {r['sel'] / tf:.1f} | {r['tow'] / tf:,.2f} | {r['loss'] / tf:.2f} "
            f"| {r['share'] * 100:.1f} % | {r['step']:,.3f} |"
        )
    add("")
    add(
        "**(b) Selection time per step: replicated (as implemented) vs sharded, modelled**"
    )
    add("")
    add(
        "Sharded: each rank scores its B/W rows against all columns (1/W of the FLOPs) and "
        "per chunk all-gathers B f32 (conditional scores + chosen mask): "
        "N·((W−1)/W·4·B / bandwidth + latency). That is an upper bound on bytes: with the "
        "repo's per-group quotas a rank's top k/W needs only its own keys, so only the chosen "
        "indices must travel. The last pair is the repo scale on one accelerator at "
        "400 TFLOP/s."
    )
    add("")
    add(
        "| W | link | paper: replicated ms | paper: sharded ms | CPU scale: replicated s "
        "| CPU scale: sharded s | repo scale on GPU: replicated ms | sharded ms |"
    )
    add("|---|---|---|---|---|---|---|---|")
    rep_paper = sel_paper / RATE
    rep_cpu = CPU["seconds"]
    rep_gpu = sel_cpu / RATE
    rows = {"paper": [], "cpu": [], "gpu": []}
    for w in WORLDS:
        sp = sharded(w, rep_paper, s["B"], s["N"])
        sc = sharded(w, rep_cpu, CPU["B"], CPU["N"])
        sg = sharded(w, rep_gpu, CPU["B"], CPU["N"])
        rows["paper"].append((w, rep_paper, sp))
        rows["cpu"].append((w, rep_cpu, sc))
        rows["gpu"].append((w, rep_gpu, sg))
        name = link(w)[0] if w > 1 else "—"
        bad = " †" if CPU["b"] // w < CPU["N"] else ""
        add(
            f"| {w:,} | {name} | {rep_paper * 1e3:.2f} | {sp * 1e3:.2f} | {rep_cpu:.3f} "
            f"| {sc:.3f}{bad} | {rep_gpu * 1e3:.2f} | {sg * 1e3:.2f}{bad} |"
        )
    add("")
    add(
        "† b/W = 4 < N = 16: `TrainConfig::validate` rejects this W at the repo scale; "
        "shown as arithmetic only (and GEMMs over B/W = 20 rows would not stay GEMM-bound)."
    )
    add("")
    add("Where sharding pays (sharded total < replicated), modelled:")
    add("")
    add(f"- Paper scale: {pays(rows['paper'])}.")
    add(f"- Repo scale, CPU-measured {rep_cpu} s: {pays(rows['cpu'])}.")
    add(
        f"- Repo scale on an accelerator ({rep_gpu * 1e3:.2f} ms): {pays(rows['gpu'])}; "
        "elsewhere the N collective latencies outweigh the compute saved."
    )
    last = replicated_row(WORLDS[-1], s, fwd)
    first = replicated_row(1, s, fwd)
    add(
        f"- Why it matters at paper scale: the replicated selection is "
        f"{first['share'] * 100:.1f} % of per-rank compute at W = 1 but "
        f"{last['share'] * 100:.0f} % at W = {WORLDS[-1]:,}, where the duplicated b×b loss "
        f"({last['loss'] / tf:.2f} TFLOP) no longer shrinks either."
    )
    print("\n".join(out))


if __name__ == "__main__":
    main()
