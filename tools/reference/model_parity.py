#!/usr/bin/env python3
"""Golden values for jester's model/optimiser parity test (crates/jester/tests/parity.rs).

Provenance: written for the `jester` project (Rust JEST, Evans et al. arXiv:2406.17711) as an
independent PyTorch re-implementation of jester's two-tower SigLIP model and its AdamW step, from
the architecture as docs/ALGORITHM.md sections 2, 5 and 7 describe it. No jester code is imported
or called; the model (attention, GELU, patchify, bilinear (antialiased) resize and PI-resize,
written out by hand) is in tools/reference/parity_model.py, and this script builds the weights and
inputs, runs the pipeline below and writes the goldens. Re-run with:

    ~/.cache/jester/torch-2.11.0/bin/python tools/reference/model_parity.py

It writes crates/jester/tests/data/parity/{weights,inputs,expected}.safetensors and
provenance.json. Deterministic for a given torch/numpy version (torch.manual_seed(SEED), CPU).

What is computed (the golden pipeline runs in float64 on the float32 weights and inputs; the
Rust model runs in float32, so the test measures jester's f32 error against an f64 answer):

  Pre-LayerNorm block (both towers), LN eps 1e-6:
      h = LN1(x) Wqkv^T + bqkv, split as [n, L, 3, heads, head_dim] (q, k, v; heads contiguous)
      a = softmax(q k^T / sqrt(head_dim) [+ causal mask, text only]) v, heads re-joined
      x = x + a Wproj^T + bproj ;  x = x + fc2(gelu_tanh(fc1(LN2(x))))
  Image tower at patch p (base patch P, image H, grid g = H/P, new grid m = H/p):
      kernel_p = PI-resize(kernel_P) : flat kernel [W*3, P*P] @ M, M = pinv(A^T)^T, A the
                 [p*p, P*P] bilinear resize (antialiased when shrinking, half-pixel centres)
      tokens   = patchify(images, p) @ kernel_p.flat^T + patch_bias   (row-major patch grid)
      x        = tokens + resize(positions, g -> m)     (same separable bilinear resize)
      z_img    = head(mean_tokens(LN(blocks(x))))
  Text tower: x = tokens[ids] + positions; causal blocks; z_txt = head(LN(x[last]))
  Both L2-normalised (norm clamped at 1e-12).
  Loss (docs/ALGORITHM.md section 2): logits = exp(t') z_img z_txt^T + b, label +1 on the
      diagonal, -1 elsewhere, loss = (1/n) sum_ij softplus(-label * logits). The batch's first
      half is encoded at the base patch, the second half at 2x the base patch (Flexi-JEST's
      training split, docs/ALGORITHM.md section 5).
  AdamW (docs/ALGORITHM.md section 7), two consecutive updates from zero moments on the same batch:
      s = schedule(step): linear warm-up over ceil(warmup_fraction*steps) steps, then cosine to 0
      g <- g * min(1, clip_norm / ||g||_global)
      m <- b1 m + (1-b1) g ; v <- b2 v + (1-b2) g^2          (k = updates so far, from 1)
      p <- p (1 - weight_decay * s)   only for parameters with 2 or more dimensions
      p <- p - s*lr * (m / (1-b1^k)) / (sqrt(v / (1-b2^k)) + eps)
  The same update is re-derived with torch.optim.AdamW (weight_decay = weight_decay/lr per
  group, decay only on >= 2-D tensors) and must agree to 1e-12.
"""
import datetime
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from parity_model import TwoTower, check_resize_matrices, layer_norm, normalise

SEED = 20250611
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "crates", "jester", "tests", "data", "parity")

# jester's ModelConfig, as its JSON (serde) form; smaller than the `tiny` preset so the goldens stay
# small. Widths, head counts and D all differ so that a transposed or mis-split tensor shows.
MODEL = {
    "image": {"image_size": 16, "patch_size": 4, "width": 32, "depth": 2, "heads": 2,
              "mlp_dim": 64},
    "text": {"vocab_size": 40, "context_length": 8, "width": 32, "depth": 2, "heads": 4,
             "mlp_dim": 48},
    "embed_dim": 24,
    "init_log_temperature": math.log(10.0),
    "init_bias": -10.0,
}
# jester's OptimConfig. clip_norm is below the gradient norm so that clipping is exercised; the step
# sits in the cosine part of the schedule. eps is 1e-3, not the default 1e-8: Adam's first update is
# lr * g / (|g| + eps), which for eps = 1e-8 is lr * sign(g) and turns the f32 round-off of a
# gradient that is exactly 0 in exact arithmetic (the attention key bias: a softmax does not change
# when all its scores shift by q.b) into an update of about 1% of lr; no f32 implementation can match
# an f64 one there. With eps near the typical clipped |g| (~1e-3) the update depends on the
# gradient's size as well as its sign, and where eps sits in the formula shows.
OPTIM = {"lr": 0.01, "warmup_fraction": 0.05, "weight_decay": 0.1, "clip_norm": 0.25,
         "beta1": 0.9, "beta2": 0.95, "eps": 1e-3}
STEP, STEPS_TOTAL = 37, 100  # 0-based index of the first update, and the schedule's length
N = 8                        # batch size
PATCHES = [4, 8, 2]          # base, the Flexi scoring patch (2x), and a finer one (kernel shrinks)


# ----------------------------------------------------------------------------------------------
# Weights

def init_weights(model, gen):
    """Random float32 weights of typical magnitude, biases and LayerNorm affines included (none
    left at 0 or 1, so that a missing or misplaced one shows)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            def randn(std, mean=0.0):
                return torch.randn(p.shape, generator=gen, dtype=torch.float32) * std + mean
            if name == "log_temperature":
                p.copy_(torch.tensor(math.log(4.0)))
            elif name == "bias":
                p.copy_(torch.tensor(-1.5))
            elif name.endswith("patch_kernel"):
                p.copy_(randn(p[0].numel() ** -0.5))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(randn(0.1, 1.0))
            elif name.endswith("bias"):
                p.copy_(randn(0.05))
            elif name.endswith("positions") or name.endswith("tokens.weight"):
                p.copy_(randn(0.5))
            else:  # linear weights [out, in]
                p.copy_(randn(p.shape[1] ** -0.5))


# ----------------------------------------------------------------------------------------------
# The optimiser

def schedule(step, steps, warmup_fraction):
    warmup = max(math.ceil(warmup_fraction * steps), 1)
    if step < warmup:
        return (step + 1) / warmup
    rest = max(steps - warmup, 1)
    progress = min((step - warmup) / rest, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def global_norm(grads):
    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))


class AdamW:
    def __init__(self, params, o):
        self.o, self.updates = o, 0
        self.m = {k: torch.zeros_like(p) for k, p in params.items()}
        self.v = {k: torch.zeros_like(p) for k, p in params.items()}

    @torch.no_grad()
    def step(self, params, step):
        o = self.o
        grad_norm = global_norm([p.grad for p in params.values()])
        clip = o["clip_norm"] / grad_norm if 0 < o["clip_norm"] < grad_norm else 1.0
        s = schedule(step, STEPS_TOTAL, o["warmup_fraction"])
        lr = s * o["lr"]
        self.updates += 1
        c1 = 1.0 - o["beta1"] ** self.updates
        c2 = 1.0 - o["beta2"] ** self.updates
        for name, p in params.items():
            g = p.grad * clip
            self.m[name] = o["beta1"] * self.m[name] + (1.0 - o["beta1"]) * g
            self.v[name] = o["beta2"] * self.v[name] + (1.0 - o["beta2"]) * g * g
            if p.dim() >= 2:
                p.mul_(1.0 - o["weight_decay"] * s)
            p.sub_(lr * (self.m[name] / c1) / (torch.sqrt(self.v[name] / c2) + o["eps"]))
        return grad_norm, clip, s


def torch_adamw_trajectory(model0, inputs, parts):
    """The same two updates by torch.optim.AdamW (float64): its decoupled decay multiplies p by
    1 - lr_t * wd_torch, so wd_torch = weight_decay / lr gives jester's 1 - weight_decay * s."""
    o = OPTIM
    model = clone_model(model0)
    named = dict(model.named_parameters())
    decay = [p for p in named.values() if p.dim() >= 2]
    rest = [p for p in named.values() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o["weight_decay"] / o["lr"]},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                            foreach=False)
    out = []
    for k in range(2):
        opt.zero_grad()
        model.loss(*inputs, parts).backward()
        norm = global_norm([p.grad for p in named.values()])
        if 0 < o["clip_norm"] < norm:
            for p in named.values():
                p.grad.mul_(o["clip_norm"] / norm)
        for group in opt.param_groups:
            group["lr"] = o["lr"] * schedule(STEP + k, STEPS_TOTAL, o["warmup_fraction"])
        opt.step()
        out.append({n: p.detach().clone() for n, p in named.items()})
    return out


def clone_model(model, dtype=torch.float64):
    copy = TwoTower(MODEL).to(dtype)
    copy.load_state_dict({k: v.to(dtype) for k, v in model.state_dict().items()})
    return copy


def write_safetensors(path, tensors, metadata):
    """`tensors` (f32, f64, i64) and string `metadata` as a safetensors file (the `safetensors`
    package, pinned in scripts/build-python)."""
    save_file({k: t.detach().cpu().contiguous() for k, t in tensors.items()}, str(path), metadata)


def max_abs(a, b):
    return float((a.double() - b.double()).abs().max())


# ----------------------------------------------------------------------------------------------

def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # reproducible reductions
    check_resize_matrices()
    gen = torch.Generator().manual_seed(SEED)

    model32 = TwoTower(MODEL)
    init_weights(model32, gen)
    weights = {k: v.detach().clone() for k, v in model32.state_dict().items()}
    assert set(weights) == {k for k, _ in model32.named_parameters()}

    image_size, context = MODEL["image"]["image_size"], MODEL["text"]["context_length"]
    images = torch.randn(N, 3, image_size, image_size, generator=gen, dtype=torch.float32)
    ids = torch.randint(0, MODEL["text"]["vocab_size"], (N, context), generator=gen)
    last = torch.tensor([context - 1, 0, 3, 5, context - 1, 2, 6, 4], dtype=torch.int64)
    assert len(last) == N
    base, low = MODEL["image"]["patch_size"], 2 * MODEL["image"]["patch_size"]
    first = (N + 1) // 2
    parts = [(first, base), (N - first, low)]

    def run(model, dtype):
        x = images.to(dtype)
        out = {}
        with torch.no_grad():
            for p in PATCHES:
                out[f"image_embeddings.p{p}"] = model.encode_images(x, p)
            out["text_embeddings"] = model.encode_texts(ids, last)
            out["temperature"] = model.log_temperature.exp()
        named = dict(model.named_parameters())
        opt = AdamW(named, OPTIM)
        for k in range(2):
            for p in named.values():
                p.grad = None
            loss = model.loss(x, ids, last, parts)
            loss.backward()
            if k == 0:
                out["loss"] = loss.detach()
                for name, p in named.items():
                    out[f"grad.{name}"] = p.grad.clone()
            else:
                out["loss_after_step"] = loss.detach()
            grad_norm, clip, s = opt.step(named, STEP + k)
            assert clip < 1.0, f"clip_norm {OPTIM['clip_norm']} does not bind ({grad_norm})"
            out[f"grad_norm.step{k + 1}"] = torch.tensor(grad_norm, dtype=torch.float64)
            out[f"schedule.step{k + 1}"] = torch.tensor(s, dtype=torch.float64)
            for name, p in named.items():
                out[f"step{k + 1}.{name}"] = p.detach().clone()
        return out

    golden = run(clone_model(model32, torch.float64), torch.float64)
    f32 = run(clone_model(model32, torch.float32), torch.float32)

    # torch.optim.AdamW agrees with the hand-written update.
    traj = torch_adamw_trajectory(model32, (images.double(), ids, last), parts)
    adamw_err = max(max_abs(traj[k][n], golden[f"step{k + 1}.{n}"])
                    for k in range(2) for n in weights)
    assert adamw_err < 1e-12, adamw_err
    # The hand-written FlexiViT path at the base patch equals a plain strided conv2d one.
    with torch.no_grad():
        m64 = clone_model(model32)
        conv = F.conv2d(images.double(), m64.image.patch_kernel, m64.image.patch_bias, stride=base)
        x = conv.flatten(2).transpose(1, 2) + m64.image.positions
        for block in m64.image.blocks:
            x = block(x)
        conv_z = normalise(m64.image.head(layer_norm(x, m64.image.norm).mean(1)))
        conv_err = max_abs(conv_z, golden[f"image_embeddings.p{base}"])
        assert conv_err < 1e-12, conv_err

    # Sanity: non-trivial outputs, every parameter moved, the low-resolution embeddings differ.
    for p in PATCHES[1:]:
        assert max_abs(golden[f"image_embeddings.p{p}"], golden[f"image_embeddings.p{base}"]) > 0.1
    for name in weights:
        assert max_abs(golden[f"step1.{name}"], weights[name].double()) > 0, name

    # f32 against f64: the noise floor the Rust test's tolerances have to sit above.
    spread = {}
    for key in golden:
        if key.startswith(("grad.", "step1.", "step2.")):
            group = key.split(".")[0]
            scale = max(float(golden[key].abs().max()), 1e-30) if group == "grad" else 1.0
            spread[group] = max(spread.get(group, 0.0), max_abs(f32[key], golden[key]) / scale)
        else:
            spread[key] = max_abs(f32[key], golden[key])

    os.makedirs(OUT, exist_ok=True)
    meta = {"source": "tools/reference/model_parity.py", "torch": torch.__version__}
    write_safetensors(os.path.join(OUT, "weights.safetensors"), weights, meta)
    write_safetensors(os.path.join(OUT, "inputs.safetensors"),
                      {"images": images, "ids": ids, "last": last}, meta)
    # Embeddings, losses and scalars in f64; gradients and parameters rounded to f32 (6e-8
    # relative, far below the test's tolerances) to keep the files small.
    expected = {k: (v.float() if k.startswith(("grad.", "step1.", "step2.")) else v.double())
                for k, v in golden.items()}
    write_safetensors(os.path.join(OUT, "expected.safetensors"), expected, meta)

    provenance = {
        "script": "tools/reference/model_parity.py",
        "command": "~/.cache/jester/torch-2.11.0/bin/python tools/reference/model_parity.py",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "seed": SEED,
        "golden_dtype": "float64 arithmetic on the float32 weights and inputs",
        "model": MODEL,
        "optim": OPTIM,
        "step": STEP,
        "steps_total": STEPS_TOTAL,
        "updates": 2,
        "batch": N,
        "patches": PATCHES,
        "loss_parts": parts,
        "parameters": sum(v.numel() for v in weights.values()),
        "files": {
            "weights.safetensors": "float32 weights, named as jester's VarStore names them",
            "inputs.safetensors": "images [n,3,H,H] f32, ids [n,T] i64, last [n] i64",
            "expected.safetensors": (
                "image_embeddings.p{patch} [n,D], text_embeddings [n,D], temperature, loss, "
                "loss_after_step (at the weights after update 1), grad.{name} (of loss), "
                "grad_norm.step{k} (before clipping), schedule.step{k}, step{k}.{name} "
                "(weights after k updates)"),
        },
        "f32_vs_f64_reference": {
            "what": ("max |torch f32 - torch f64| of the same pipeline; grad is relative to "
                     "each tensor's largest |gradient|"),
            "max": spread,
        },
        "cross_checks": {
            "resize_matrix_vs_F.interpolate_antialias": "< 1e-12",
            "torch.optim.AdamW_vs_hand_written": adamw_err,
            "conv2d_patch_embedding_vs_patchify": conv_err,
        },
    }
    with open(os.path.join(OUT, "provenance.json"), "w") as f:
        json.dump(provenance, f, indent=1)
        f.write("\n")
    print(json.dumps(spread, indent=1))
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({provenance['parameters']} parameters, "
          f"loss {float(golden['loss']):.6f}, grad norm {float(golden['grad_norm.step1']):.4f})")


if __name__ == "__main__":
    main()
