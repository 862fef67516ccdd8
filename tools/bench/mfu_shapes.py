#!/usr/bin/env python3
"""Where a CPU training step's time goes when it runs well under the machine's GEMM rate
(BENCHMARKS.md, "CPU efficiency: where the rest goes").

Two measurements with the libtorch jester links (same threads):

1. The GEMM rate *at the model's own shapes*: every matrix product of one training step of the
   `tiny` preset at batch b (forward, and the two backward products of each), timed on its own with
   torch.matmul, summed over the step and weighted by FLOPs. This is the best a step whose products
   ran back to back could reach; it is set against the square 2048³ GEMM rate that MFU divides by.
2. The profile of the same-sized open_clip training step (tools/bench/open_clip_speed.py's model):
   self CPU time by operator, grouped into matrix products, attention, normalisation, activations,
   optimiser and the rest — the same ATen operators jester's step runs.

    scripts/with-torch python tools/bench/mfu_shapes.py [--batch 256] [--threads 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from presets import presets  # noqa: E402


def rate(m: int, k: int, n: int, batch: int = 1, repeats: int = 20) -> float:
    """Seconds of one [batch × m × k] @ [k × n] product (best of repeats, after warm-up)."""
    a = torch.randn(batch, m, k) if batch > 1 else torch.randn(m, k)
    b = torch.randn(batch, k, n) if batch > 1 else torch.randn(k, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return best


def step_products(b: int, model: dict) -> list[tuple[str, int, int, int, int, int]]:
    """(what, batch, m, k, n, count) of one training step's products, forward and backward, for
    jester's `model` (a preset's resolved shapes, presets.py)."""
    image, text = model["image"], model["text"]
    image_tokens = (image["image_size"] // image["patch_size"]) ** 2
    products = []
    for tower, tokens, config in (
        ("image", image_tokens, image),
        ("text", text["context_length"], text),
    ):
        depth, width, heads, mlp = (config[k] for k in ("depth", "width", "heads", "mlp_dim"))
        rows = b * tokens
        head = width // heads
        linear = [
            ("qkv", width, 3 * width),
            ("out", width, width),
            ("mlp in", width, mlp),
            ("mlp out", mlp, width),
        ]
        for name, k, n in linear:
            products.append((f"{tower} {name} fwd", 1, rows, k, n, depth))
            products.append((f"{tower} {name} dX", 1, rows, n, k, depth))
            products.append((f"{tower} {name} dW", 1, k, rows, n, depth))
        # Attention scores and values per (example, head), forward and backward (2 each).
        products.append(
            (f"{tower} attention QK", b * heads, tokens, head, tokens, 3 * depth)
        )
        products.append(
            (f"{tower} attention AV", b * heads, tokens, tokens, head, 3 * depth)
        )
    patch = 3 * image["patch_size"] ** 2
    products.append(("image patch embedding fwd+bwd", 1, b * image_tokens, patch, image["width"], 3))
    products.append(("logits fwd+bwd", 1, b, model["embed_dim"], b, 3))
    return products


def profile_open_clip(b: int, shapes: dict) -> dict:
    from open_clip.loss import SigLipLoss
    from open_clip_speed import open_clip_model

    torch.manual_seed(0)
    model, _ = open_clip_model("tiny", shapes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = SigLipLoss()
    size = shapes["image"]["image_size"]
    images = torch.randn(b, 3, size, size)
    ids = torch.randint(0, 1024, (b, shapes["text"]["context_length"]))

    def step():
        image, text, scale, bias = model(images, ids)
        loss = loss_fn(image, text, scale, bias)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            step()
    groups = {
        "matrix products (mm, addmm, bmm, linear)": (
            "mm",
            "addmm",
            "bmm",
            "matmul",
            "linear",
            "baddbmm",
        ),
        "attention kernel (SDPA)": ("scaled_dot_product", "_flash", "_efficient"),
        "LayerNorm": ("layer_norm",),
        "GELU": ("gelu",),
        "optimiser (AdamW: foreach ops)": ("_foreach", "adam"),
        "copies, views, layout": (
            "copy_",
            "contiguous",
            "clone",
            "permute",
            "transpose",
            "view",
            "reshape",
            "cat",
            "to",
            "empty",
            "zero_",
            "fill_",
        ),
    }
    totals = {g: 0.0 for g in groups}
    totals["other elementwise and reductions"] = 0.0
    for event in prof.key_averages():
        if (
            event.key.startswith("autograd::")
            or event.key.startswith("Optimizer")
            or event.key.startswith("ProfilerStep")
        ):
            continue
        name = event.key.lower()
        for group, keys in groups.items():
            if any(k in name for k in keys):
                totals[group] += event.self_cpu_time_total
                break
        else:
            totals["other elementwise and reductions"] += event.self_cpu_time_total
    whole = sum(totals.values())
    return {g: t / whole for g, t in sorted(totals.items(), key=lambda kv: -kv[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    square = 2 * 2048**3 / rate(2048, 2048, 2048, repeats=5) / 1e9
    rows = []
    flops = seconds = 0.0
    shapes = presets(["tiny"])["tiny"]["model"]
    for what, batch, m, k, n, count in step_products(args.batch, shapes):
        s = rate(m, k, n, batch)
        f = 2.0 * batch * m * k * n
        rows.append(
            {
                "what": what,
                "shape": [batch, m, k, n],
                "count": count,
                "gflops": f / s / 1e9,
            }
        )
        flops += f * count
        seconds += s * count
    shaped = flops / seconds / 1e9
    print(
        f"square 2048³ GEMM: {square:.1f} GFLOP/s; the tiny step's products at their own shapes: "
        f"{shaped:.1f} GFLOP/s = {100 * shaped / square:.0f}% of it ({args.threads} threads, b = {args.batch})"
    )
    print(
        f"\n| product (tiny, b = {args.batch}) | [batch ×] m × k × n | GFLOP/s | % of 2048³ |"
    )
    print("|---|---|---|---|")
    for row in rows:
        bt, m, k, n = row["shape"]
        shape = f"{bt} × {m} × {k} × {n}" if bt > 1 else f"{m} × {k} × {n}"
        print(
            f"| {row['what']} | {shape} | {row['gflops']:.1f} | {100 * row['gflops'] / square:.0f}% |"
        )
    profile = profile_open_clip(args.batch, shapes)
    print("\n| open_clip tiny step, self CPU time | share |")
    print("|---|---|")
    for group, share in profile.items():
        print(f"| {group} | {100 * share:.1f}% |")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "square_gflops": square,
                    "shaped_gflops": shaped,
                    "products": rows,
                    "profile": profile,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
