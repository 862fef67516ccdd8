#!/usr/bin/env python3
"""JEST data selection in an open_clip training loop, end to end, on jester's synthetic shards.

What runs, all from random initialisation and offline (no weights or data are downloaded):

1. A tiny ViT + text transformer is registered with open_clip (SigLIP-style: sigmoid loss,
   t = 10, b = -10 at init) and trained as the *reference* on `curated-strong/` (uniform batches).
2. The reference embeds the whole raw `pool/`; the rows are cached by sample key with
   `jester.ReferenceCacheWriter`, in the format `jester train --reference` reads.
3. Two learners start from one initialisation and see one stream of super-batches of B = 5b pool
   samples: *uniform* trains on the first b of each (a uniform draw: the stream is shuffled),
   *JEST* embeds all B with the learner (no grad), looks the reference's rows up by key and trains
   on the b that `jester.select` picks (joint learnability, chunked).
4. Held-out retrieval on `eval/`, computed as `jester eval` does (crates/jester/src/eval/rank.rs):
   pessimistic ties, and examples whose captions tokenise identically answer for each other.

    python examples/open_clip_jest.py --data DIR [--steps N] [--smoke] [--out results.json]

DIR is a `jester data synth` folder (pool/, curated-strong/, eval/); without --data one is made
with `jester data synth --preset tiny` (the CLI from target/debug, or $JESTER_CLI). Requirements:
examples/requirements.txt, in the venv `scripts/with-torch` makes, with the `jester` package
installed (`make python`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import jester
import open_clip
import torch
from open_clip.loss import SigLipLoss
from open_clip.tokenizer import default_bpe
from retrieval import caption_groups, recall
from synth_shards import Split, generate_data, image_size_of, load_split

MODEL_NAME = "jester-tiny-vit-p8"  # no "siglip" in the name: open_clip would fetch a HF tokenizer
CONTEXT = 32
EMBED_DIM = 64
FILTER = 5  # B = 5·b: JEST's filtering ratio f = 0.8


def model_config(image_size: int) -> dict:
    """A tiny open_clip CLIP: ViT (patch 8) and a text transformer over open_clip's own BPE."""
    return {
        "embed_dim": EMBED_DIM,
        "init_logit_scale": math.log(10.0),  # SigLIP's init: t = 10 ...
        "init_logit_bias": -10.0,  # ... and b = -10
        "vision_cfg": {
            "image_size": image_size,
            "patch_size": 8,
            "width": 96,
            "layers": 3,
            "head_width": 32,
            "mlp_ratio": 4.0,
        },
        "text_cfg": {
            "context_length": CONTEXT,
            "vocab_size": 49408,  # open_clip's SimpleTokenizer
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    }


# ---------------------------------------------------------------------------------------------
# Data: WebDataset shards read with tarfile + PIL (synth_shards.py).


# ---------------------------------------------------------------------------------------------
# Training.


def create_model(seed: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(seed)
    return open_clip.create_model(MODEL_NAME, pretrained=None, device=device)


class Trainer:
    """AdamW with the paper's (and `jester train`'s) settings: peak lr 1e-3, β = (0.9, 0.95),
    1 % linear warm-up then cosine decay to 0, decay on weight matrices only (torch's AdamW
    multiplies it by the lr: 0.1 · 1e-3 = jester's 1e-4 per step), global-norm clip 1."""

    def __init__(self, model: torch.nn.Module, steps: int, lr: float = 1e-3):
        self.model, self.steps = model, steps
        decay = [p for p in model.parameters() if p.ndim >= 2]
        rest = [p for p in model.parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": 0.1},
                {"params": rest, "weight_decay": 0.0},
            ],
            lr=lr,
            betas=(0.9, 0.95),
            eps=1e-8,
        )
        warmup = max(1, round(0.01 * steps))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (
                1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))
            )

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.loss = SigLipLoss()
        self.checked = False

    def step(self, images: torch.Tensor, ids: torch.Tensor) -> float:
        model = self.model
        model.train()
        # Normalised features, exp(logit_scale) and the bias.
        image, text, scale, bias = model(images, ids)
        loss = self.loss(image, text, scale, bias)
        if not self.checked:
            # open_clip's SigLIP loss is the loss jester scores with: check it once.
            torch.testing.assert_close(
                jester.sigmoid_loss(
                    image.detach(), text.detach(), scale.detach(), bias.detach()
                ),
                loss.detach(),
                rtol=1e-5,
                atol=1e-5,
            )
            self.checked = True
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # as open_clip's trainer does
        return loss.item()


@torch.no_grad()
def embed(
    model: torch.nn.Module,
    images: torch.Tensor,
    ids: torch.Tensor,
    device,
    block: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image and text embeddings `[n, D]`, in blocks of rows."""
    model.eval()
    image, text = [], []
    for start in range(0, len(images), block):
        image.append(
            model.encode_image(images[start : start + block].to(device), normalize=True)
        )
        text.append(
            model.encode_text(ids[start : start + block].to(device), normalize=True)
        )
    return torch.cat(image), torch.cat(text)


def temperature_and_bias(model: torch.nn.Module) -> tuple[float, float]:
    return model.logit_scale.exp().item(), model.logit_bias.item()


def epoch_stream(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` indices into n samples: shuffled epochs, one after another."""
    epochs = [
        torch.randperm(n, generator=generator) for _ in range(math.ceil(count / n))
    ]
    return torch.cat(epochs)[:count]


def train_reference(args, curated: Split, device) -> torch.nn.Module:
    model = create_model(args.seed + 1, device)
    trainer = Trainer(model, args.reference_steps)
    order = epoch_stream(
        len(curated),
        args.reference_steps * args.batch,
        torch.Generator().manual_seed(args.seed + 1),
    ).view(args.reference_steps, args.batch)
    for step, idx in enumerate(order):
        loss = trainer.step(curated.images[idx].to(device), curated.ids[idx].to(device))
        log(args, "reference", step, loss, model)
    return model


def train_learner(args, method: str, init: dict, pool: Split, cache, device) -> tuple:
    """Trains from `init` on the pool's super-batch stream; uniform takes each super-batch's first
    b, JEST the b that `jester.select` picks. Returns (model, selection statistics)."""
    model = create_model(args.seed, device)
    model.load_state_dict(init)
    trainer = Trainer(model, args.steps)
    b, big = args.batch, args.batch * FILTER
    stream = epoch_stream(
        len(pool), args.steps * big, torch.Generator().manual_seed(args.seed)
    )
    clean = torch.tensor([n == "clean" for n in pool.noise])
    stats = {
        "clean_trained": 0,
        "clean_drawn": 0,
        "score_selected": 0.0,
        "score_uniform": 0.0,
    }
    for step, superbatch in enumerate(stream.view(args.steps, big)):
        if method == "uniform":
            idx = superbatch[:b]
        else:
            zi, zt = embed(model, pool.images[superbatch], pool.ids[superbatch], device)
            learner = jester.Embeddings(zi, zt, *temperature_and_bias(model))
            reference = cache.lookup(
                [pool.keys[i] for i in superbatch.tolist()], str(device)
            )
            picked, summary = jester.select(
                learner,
                reference,
                b,
                chunks=args.chunks,
                seed=args.seed * 1_000_003 + step,
                summary=True,  # mean scores of the selected and of a uniform sub-batch
            )
            idx = superbatch[picked.cpu()]
            stats["score_selected"] += summary["selected"] / args.steps
            stats["score_uniform"] += summary["uniform"] / args.steps
        stats["clean_trained"] += int(clean[idx].sum())
        stats["clean_drawn"] += int(clean[superbatch].sum())
        loss = trainer.step(pool.images[idx].to(device), pool.ids[idx].to(device))
        log(args, method, step, loss, model)
    selection = {
        "clean_fraction_trained": stats["clean_trained"] / (args.steps * b),
        "clean_fraction_drawn": stats["clean_drawn"] / (args.steps * big),
    }
    if method == "jest":
        # Mean learnability per example of the selected sub-batch, and of a uniform one.
        selection["mean_score_selected"] = stats["score_selected"]
        selection["mean_score_uniform"] = stats["score_uniform"]
    return model, selection


def log(args, name: str, step: int, loss: float, model) -> None:
    last = step + 1 == (args.reference_steps if name == "reference" else args.steps)
    if step % args.log_every == 0 or last:
        t, b = temperature_and_bias(model)
        print(
            f"  {name:9s} step {step + 1:4d}  loss {loss:7.3f}  t {t:6.2f}  b {b:6.2f}",
            flush=True,
        )


# ---------------------------------------------------------------------------------------------
# Reference cache and evaluation.


def write_reference_cache(model, pool: Split, work: Path, device) -> Path:
    """The reference's embeddings of every pool sample, by key, with their provenance: the
    shards, the weights file (hashed) and open_clip's BPE vocabulary (hashed)."""
    weights = work / "reference.pt"
    torch.save(model.state_dict(), weights)
    path = work / "reference-pool.safetensors"
    writer = jester.ReferenceCacheWriter(path)
    for start in range(0, len(pool), 256):
        rows = slice(start, start + 256)
        zi, zt = embed(model, pool.images[rows], pool.ids[rows], device)
        writer.append(pool.keys[rows], zi, zt)
    t, b = temperature_and_bias(model)
    return writer.finish(
        t, b, shards=pool.shards, model=str(weights), tokenizer=default_bpe()
    )


def evaluate(model, split: Split, device) -> dict:
    image, text = embed(model, split.images, split.ids, device)
    groups = caption_groups(split.ids).to(image.device)
    return {
        "image_to_text": recall(image, text, groups),
        "text_to_image": recall(text, image, groups),
    }


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, help="a `jester data synth` folder (default: make one)"
    )
    parser.add_argument(
        "--steps", type=int, help="learner steps (default 300; --smoke: 3)"
    )
    parser.add_argument(
        "--reference-steps", type=int, help="reference steps (default: --steps)"
    )
    parser.add_argument(
        "--batch", type=int, help="b, the trained batch (default 64; --smoke: 16)"
    )
    parser.add_argument(
        "--chunks", type=int, default=16, help="JEST chunks (default 16)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--work", type=Path, help="where data and the cache go (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny budget: seconds, for tests"
    )
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args()
    args.steps = args.steps or (3 if args.smoke else 300)
    args.reference_steps = args.reference_steps or args.steps
    args.batch = args.batch or (16 if args.smoke else 64)
    args.chunks = min(args.chunks, args.batch)
    if args.steps < 1 or args.reference_steps < 1 or args.batch < 1:
        parser.error("--steps, --reference-steps and --batch must be positive")
    device = torch.device(args.device)
    started = time.perf_counter()

    work = args.work or Path(tempfile.mkdtemp(prefix="open-clip-jest-"))
    work.mkdir(parents=True, exist_ok=True)
    data = args.data
    if data is None:
        data = work / "data"
        if not (data / "pool").is_dir():
            generate_data(data)
    for split in ("pool", "curated-strong", "eval"):
        if not (data / split).is_dir():
            raise SystemExit(
                f"{data} has no {split}/: expected a `jester data synth` folder"
            )

    image_size = image_size_of(data / "pool")
    open_clip.factory._MODEL_CONFIGS[MODEL_NAME] = model_config(image_size)
    # open_clip's SimpleTokenizer (its BPE file ships in the package), context 32.
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    preprocess = open_clip.image_transform(image_size, is_train=False)
    pool, curated, held_out = (
        load_split(data / s, preprocess, tokenizer)
        for s in ("pool", "curated-strong", "eval")
    )
    big = args.batch * FILTER
    if big > len(pool):
        parser.error(f"B = 5·b = {big} exceeds the pool's {len(pool)} samples")
    print(
        f"data {data}: pool {len(pool)}, curated-strong {len(curated)}, eval {len(held_out)}; "
        f"{image_size}px; work folder {work}",
        flush=True,
    )
    print(
        f"b = {args.batch}, B = {big}, chunks = {args.chunks}, steps = {args.steps} "
        f"(reference {args.reference_steps}), seed {args.seed}, device {device}",
        flush=True,
    )

    results: dict = {}
    timings: dict = {}

    t0 = time.perf_counter()
    reference = train_reference(args, curated, device)
    timings["reference"] = time.perf_counter() - t0
    results["reference"] = evaluate(reference, held_out, device)
    cache_path = write_reference_cache(reference, pool, work, device)
    cache = jester.ReferenceCache(cache_path)
    print(
        f"reference cache: {cache_path} ({len(cache)} rows, D = {cache.dim})",
        flush=True,
    )
    del reference

    init = create_model(args.seed, device).state_dict()
    selection = {}
    for method in ("uniform", "jest"):
        t0 = time.perf_counter()
        model, selection[method] = train_learner(
            args, method, init, pool, cache, device
        )
        timings[method] = time.perf_counter() - t0
        results[method] = evaluate(model, held_out, device)

    groups = caption_groups(held_out.ids)
    report = {
        "settings": {
            "data": str(data),
            "model": MODEL_NAME,
            "model_config": model_config(image_size),
            "steps": args.steps,
            "reference_steps": args.reference_steps,
            "batch": args.batch,
            "super_batch": big,
            "chunks": args.chunks,
            "seed": args.seed,
            "device": str(device),
            "smoke": args.smoke,
            "versions": {
                "torch": torch.__version__,
                "open_clip": open_clip.__version__,
                "jester": jester.__version__,
            },
        },
        "eval": {
            "examples": len(held_out),
            "duplicate_captions": int((torch.bincount(groups)[groups] > 1).sum()),
        },
        "reference_cache": str(cache_path),
        "runs": {
            name: {
                **results[name],
                "train_seconds": round(timings[name], 2),
                **selection.get(name, {}),
            }
            for name in ("reference", "uniform", "jest")
        },
        "wall_seconds": round(time.perf_counter() - started, 2),
    }

    print(
        f"\nheld-out retrieval on {len(held_out)} eval samples (R@1, pessimistic ties):"
    )
    print(f"  {'run':10s} {'image→text':>10s} {'text→image':>10s} {'train s':>8s}")
    for name, run in report["runs"].items():
        print(
            f"  {name:10s} {run['image_to_text']['r1']:10.4f} {run['text_to_image']['r1']:10.4f} "
            f"{run['train_seconds']:8.1f}"
        )
    for name in ("uniform", "jest"):
        run = report["runs"][name]
        print(
            f"  {name}: clean fraction of trained samples {run['clean_fraction_trained']:.3f} "
            f"(of drawn {run['clean_fraction_drawn']:.3f})"
        )
    print(f"wall time {report['wall_seconds']:.1f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
