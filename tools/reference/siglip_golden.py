#!/usr/bin/env python3
"""Golden values for jester's contrastive-loss tests (SigLIP sigmoid loss and CLIP softmax loss).

Provenance: written for the `jester` project (Rust JEST, Evans et al. arXiv:2406.17711) as an
independent float64 numpy reference for crates/jester/tests/data/loss_golden.json.
Formulas follow docs/ALGORITHM.md section 2 (themselves restated from the SigLIP / CLIP code in
google-research/big_vision). Re-run with:  python3 tools/reference/siglip_golden.py
The output is deterministic for a given numpy version (np.random.default_rng(20241125), PCG64).

Definitions (all float64, img/txt rows L2-normalised, t = temperature itself, b = bias):
  logits[i,j]            = t * img[i].txt[j] + b
  label[i,j]             = +1 if i == j else -1
  sigmoid_nll[i,j]       = softplus(-label*logits) = np.logaddexp(0, -label*logits)   (stable)
  sigmoid_per_example[i] = sum_j sigmoid_nll[i,j]             (row sum)
  sigmoid_loss           = mean_i sigmoid_per_example[i]      (= (1/n) sum_ij nll)
  s                      = t * img @ txt.T                    (softmax: NO bias)
  row_ce[i] = -log_softmax(s, axis=1)[i,i] ; col_ce[i] = -log_softmax(s, axis=0)[i,i]
  softmax_per_example[i] = (row_ce[i] + col_ce[i]) / 2 ;  softmax_loss = mean of it
"""
import json
import os

import numpy as np

SEED = 20241125
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   "..", "..", "crates", "jester", "tests", "data", "loss_golden.json")

# (name, n, d, t, b)
CASES = [
    ("typical", 6, 8, 10.0, -10.0),
    ("uneven", 7, 5, 1.7, 0.3),
    ("huge_temperature", 5, 4, 1.0e4, 0.0),
    ("huge_bias", 4, 3, 1.0, -1.0e4),
    ("single", 1, 4, 10.0, -10.0),
]


def l2_normalise(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def log_softmax(s, axis):
    # Stable: subtract the max before exponentiating (logsumexp trick).
    m = np.max(s, axis=axis, keepdims=True)
    return s - (m + np.log(np.sum(np.exp(s - m), axis=axis, keepdims=True)))


def losses(img, txt, t, b):
    n = img.shape[0]
    sim = img @ txt.T
    logits = t * sim + b
    label = 2.0 * np.eye(n) - 1.0                      # +1 diagonal, -1 elsewhere
    nll = np.logaddexp(0.0, -label * logits)           # softplus(-label*logits), never log(sigmoid)
    sig_per = nll.sum(axis=1)
    s = t * sim                                        # softmax/InfoNCE logits: no bias
    idx = np.arange(n)
    row_ce = -log_softmax(s, axis=1)[idx, idx]         # image -> text
    col_ce = -log_softmax(s, axis=0)[idx, idx]         # text -> image
    soft_per = 0.5 * (row_ce + col_ce) + 0.0           # + 0.0 turns -0.0 (n = 1) into 0.0
    return nll, sig_per, soft_per


def make_embeddings(rng, name, n, d):
    # Paired embeddings: txt is a noisy copy of img, so positives are (mostly) the most similar pairs.
    img = l2_normalise(rng.standard_normal((n, d)))
    txt = l2_normalise(img + 0.7 * rng.standard_normal((n, d)))
    if name == "huge_temperature":
        # Make pair 0 almost aligned (diag logit ~ +1e4) and make txt[1] nearly identical to txt[0],
        # so the NEGATIVE (0,1) also has a logit ~ +1e4 (nll ~ 1e4) and row 0 of the softmax has two
        # near-equal huge logits. img[1] is likewise pushed towards txt[0], so (1,0) is a hot negative.
        txt[0] = l2_normalise((img[0] + 1e-3 * rng.standard_normal(d))[None])[0]
        txt[1] = l2_normalise((txt[0] + 1e-4 * rng.standard_normal(d))[None])[0]
        img[1] = l2_normalise((txt[0] + 1e-3 * rng.standard_normal(d))[None])[0]
    return img, txt


def main():
    rng = np.random.default_rng(SEED)
    cases = []
    for name, n, d, t, b in CASES:
        img, txt = make_embeddings(rng, name, n, d)
        nll, sig_per, soft_per = losses(img, txt, t, b)
        for arr in (nll, sig_per, soft_per):
            assert np.all(np.isfinite(arr)), name
        cases.append({
            "name": name, "n": n, "d": d,
            "img": img.tolist(), "txt": txt.tolist(), "t": t, "b": b,
            "sigmoid_nll": nll.tolist(),
            "sigmoid_loss": float(sig_per.mean()),
            "sigmoid_per_example": sig_per.tolist(),
            "softmax_loss": float(soft_per.mean()),
            "softmax_per_example": soft_per.tolist(),
        })
    doc = {
        "provenance": (
            f"tools/reference/siglip_golden.py, numpy {np.__version__}, "
            f"np.random.default_rng({SEED}), float64 throughout. img/txt rows L2-normalised "
            "(txt = normalise(img + 0.7*N(0,1)); case huge_temperature additionally sets txt[0]~img[0], "
            "txt[1]~txt[0], img[1]~txt[0]). logits[i,j] = t*img[i].txt[j] + b; label = +1 on the "
            "diagonal, -1 elsewhere; sigmoid_nll = np.logaddexp(0, -label*logits); sigmoid_per_example "
            "= row sums of sigmoid_nll; sigmoid_loss = mean of sigmoid_per_example. Softmax: "
            "s = t*img@txt.T (no bias); row_ce[i] = -log_softmax(s,axis=1)[i,i], col_ce[i] = "
            "-log_softmax(s,axis=0)[i,i] (max-shifted logsumexp); softmax_per_example = "
            "(row_ce+col_ce)/2; softmax_loss = mean of it. t is the temperature itself (not log t)."),
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)   # Python floats are written with shortest round-trip repr
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
