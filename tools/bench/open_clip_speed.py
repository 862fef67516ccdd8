#!/usr/bin/env python3
"""Training throughput of open_clip's step next to jester's, on the same model sizes, data and
threads (BENCHMARKS.md, "Training throughput against open_clip").

For each preset, one process runs `jester bench train --methods uniform` (which reports seconds per
step by phase), then this process builds the open_clip model of the same sizes (ViT: image size,
patch, width, depth, heads, MLP 4×; text: context, width, depth, heads, jester's vocabulary size;
D) and times its training step — forward, open_clip's SigLipLoss, backward, gradient clipping,
AdamW — on batches of the same synthetic scenes `jester bench train` generated
(target/bench-train-data/curated-strong, decoded once with PIL, so no loading is timed). Compared:
open_clip's step against jester's `step` phase (its update: forward, loss, backward, AdamW), and
jester's whole iteration (loading included) for reference.

    scripts/with-torch python tools/bench/open_clip_speed.py [--configs tiny,tiny-hires,small]
        [--batch 256] [--steps 10] [--warmup 3] [--threads 2] [--out FILE.json]

Needs examples/requirements.txt (open_clip_torch) in the venv and a built CLI (target/debug/jester
or $JESTER_CLI).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import open_clip
import torch
from open_clip.loss import SigLipLoss

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples"))
from presets import cli, presets
from synth_shards import load_split

# jester's default BPE size: the vocabulary the presets train with (model.text.vocab_size is 0,
# "from the tokenizer").
VOCAB = 1024


def open_clip_model(name: str, model: dict) -> torch.nn.Module:
    """open_clip's model of jester's `model` (a preset's resolved shapes, presets.py): mean-pooled
    ViT and causal text transformer of the same widths, depths, heads and MLP sizes."""
    image, text = model["image"], model["text"]
    size, patch, width, depth, heads = (
        image[k] for k in ("image_size", "patch_size", "width", "depth", "heads")
    )
    context, t_width, t_depth, t_heads = (
        text[k] for k in ("context_length", "width", "depth", "heads")
    )
    config = {
        "embed_dim": model["embed_dim"],
        "init_logit_scale": math.log(10.0),
        "init_logit_bias": -10.0,
        "vision_cfg": {
            "image_size": size,
            "patch_size": patch,
            "width": width,
            "layers": depth,
            "head_width": width // heads,
            "mlp_ratio": image["mlp_dim"] / width,
            "pool_type": "avg",  # jester mean-pools its image tokens
        },
        "text_cfg": {
            "context_length": context,
            "vocab_size": VOCAB,
            "width": t_width,
            "heads": t_heads,
            "layers": t_depth,
            "mlp_ratio": text["mlp_dim"] / t_width,
        },
    }
    model_name = f"jester-bench-{name}"
    open_clip.factory._MODEL_CONFIGS[model_name] = config
    return open_clip.create_model(model_name, pretrained=None), config


def jester_row(name: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        command = [
            str(cli()),
            "bench",
            "train",
            "--config",
            name,
            "--set",
            f"batch={args.batch}",
            "--methods",
            "uniform",
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--work",
            str(Path(tmp) / "work"),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
        subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        report = json.loads(out.read_text())
    row = report["rows"][0]
    step = row["seconds_per_step"]["step"]
    return {
        "parameters": report["parameters"],
        "threads": report["threads"],
        "gemm_gflops": report["gemm_gflops_square_2048"],
        "update_seconds": step,
        "update_examples_per_second": args.batch / step,
        "iteration_examples_per_second": row["examples_per_second"],
        "mfu": row["mfu"],
    }


def open_clip_row(
    name: str, model_shapes: dict, args, images: torch.Tensor, ids: torch.Tensor
) -> dict:
    torch.manual_seed(0)
    model, config = open_clip_model(name, model_shapes)
    size = config["vision_cfg"]["image_size"]
    context = config["text_cfg"]["context_length"]
    images = torch.nn.functional.interpolate(
        images, size=(size, size), mode="bilinear", antialias=True
    )
    ids = ids[:, :context] % VOCAB
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1
    )
    loss_fn = SigLipLoss()
    n = images.shape[0]

    def step(i: int) -> None:
        rows = torch.arange(i * args.batch, (i + 1) * args.batch) % n
        image, text, scale, bias = model(images[rows], ids[rows])
        loss = loss_fn(image, text, scale, bias)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    model.train()
    for i in range(args.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(args.steps):
        step(args.warmup + i)
    seconds = (time.perf_counter() - start) / args.steps
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "update_seconds": seconds,
        "update_examples_per_second": args.batch / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="tiny,tiny-hires,small")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    names = args.configs.split(",")
    shapes = presets(names)
    torch.set_num_threads(args.threads)
    rows = {}
    for name in names:
        jester = jester_row(
            name, args
        )  # also generates target/bench-train-data the first time
        if jester["threads"] != args.threads:
            raise SystemExit(
                f"jester ran {jester['threads']} threads, open_clip {args.threads}"
            )
        data = REPO / "target/bench-train-data/curated-strong"
        tokenizer = open_clip.get_tokenizer("ViT-B-32")
        preprocess = open_clip.image_transform(32, is_train=False)
        split = load_split(data, preprocess, tokenizer)
        theirs = open_clip_row(name, shapes[name]["model"], args, split.images, split.ids)
        rows[name] = {"jester": jester, "open_clip": theirs}
        print(
            f"{name}: jester update {jester['update_examples_per_second']:.0f} ex/s "
            f"(iteration {jester['iteration_examples_per_second']:.0f}), open_clip "
            f"{theirs['update_examples_per_second']:.0f} ex/s; parameters "
            f"{jester['parameters']:,} / {theirs['parameters']:,}",
            flush=True,
        )
    print(
        "\n| preset | b | parameters jester / open_clip | jester update, ex/s | open_clip step, ex/s | jester / open_clip | jester iteration (loading included), ex/s |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        j, o = row["jester"], row["open_clip"]
        print(
            f"| {name} | {args.batch} | {j['parameters']:,} / {o['parameters']:,} | "
            f"{j['update_examples_per_second']:.0f} | {o['update_examples_per_second']:.0f} | "
            f"{j['update_examples_per_second'] / o['update_examples_per_second']:.2f}× | "
            f"{j['iteration_examples_per_second']:.0f} |"
        )
    print(
        f"\n{args.threads} threads, torch {torch.__version__}, open_clip {open_clip.__version__}"
    )
    if args.out:
        args.out.write_text(
            json.dumps(
                {"threads": args.threads, "batch": args.batch, "rows": rows}, indent=1
            )
        )


if __name__ == "__main__":
    main()
