#!/usr/bin/env python3
"""Naive numpy JEST joint selection (paper Alg. 1) -- speed/memory BASELINE for jester's benchmark.

Provenance: written for the `jester` project (Rust JEST, Evans et al. "Data curation via joint example
selection further accelerates multimodal learning", arXiv:2406.17711, Algorithm 1). Semantics follow
docs/ALGORITHM.md sections 2-4, EXCEPT that this script deliberately does what jester avoids:
it materialises the full [B, B] float32 pairwise sigmoid-NLL matrices (learner and reference) and
the [B, B] learnability matrix S = nll_learner - nll_reference. That O(B^2) memory is the point.

  python3 jest_numpy.py --inputs DIR --batch b --chunks N --gain G --seed S --out result.json

DIR: learner_image.npy, learner_text.npy, reference_image.npy, reference_text.npy (float32 [B, D],
rows L2-normalised) and params.json {"learner_t", "learner_b", "reference_t", "reference_b"}
(t is the temperature itself, not its log).

Selection: chunk 1 (size b//N) is drawn without replacement with p ~ exp(gain * S[i,i]) by Gumbel-top-k;
chunk c > 1 uses logit[i] = S[i,i] + sum_{k in K} (S[i,k] + S[k,i]) computed as
diag + S @ is_sampled + S.T @ is_sampled, selected items masked to -inf, Gumbel-top-k again. The last
chunk takes the remainder b - (N-1)*(b//N). Gumbel noise comes from np.random.default_rng(seed).
Timed region (time.perf_counter): matrix construction + selection (not file loading, not the reported
mean learnabilities). Memory: VmHWM (reset through /proc/self/clear_refs) before/after, plus VmRSS.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np


def status_bytes(field):
    try:  # Linux only
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak():
    """Restart the high-water mark at the current resident size. A child's ru_maxrss starts at its
    parent's RSS at fork (a benchmark launched from a big process would see no growth at all), so on
    Linux the peak is VmHWM after a reset through /proc/self/clear_refs."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def maxrss_bytes():
    hwm = status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024   # macOS reports bytes, Linux KiB


def vmrss_bytes():
    try:  # current resident set size (Linux only)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def sigmoid_nll_matrix(img, txt, t, b):
    """[B, B] float32 softplus(-label * (t*img@txt.T + b)), built in place in one buffer."""
    m = np.matmul(img, txt.T)                  # float32 [B, B]: the one big allocation
    m *= np.float32(t)
    m += np.float32(b)
    d = np.einsum("ii->i", m)                  # writable view of the diagonal
    d *= -1                                    # -label*logits: +logits off-diagonal, -logits on it
    np.logaddexp(np.float32(0), m, out=m)      # stable softplus, never log(sigmoid)
    return m


def gumbel_top_k(logits, k, rng):
    """k indices drawn without replacement with p ~ exp(logits) (-inf = excluded), best first."""
    x = logits + rng.gumbel(size=logits.shape)
    top = np.argpartition(-x, k - 1)[:k]
    return top[np.argsort(-x[top], kind="stable")]


def jest_select(S, b, n_chunks, gain, rng):
    B = S.shape[0]
    diag = np.diagonal(S).astype(np.float64)
    is_sampled = np.zeros(B, dtype=np.float32)
    base = b // n_chunks
    chosen = []
    for c in range(n_chunks):
        k = base if c < n_chunks - 1 else b - (n_chunks - 1) * base
        if k == 0:
            continue
        if c == 0:
            logits = diag.copy()               # unconditional (diagonal) learnability
        else:                                  # sum over selected k of S[i,k] + S[k,i]
            logits = diag + (S @ is_sampled) + (is_sampled @ S)
            logits[is_sampled > 0] = -np.inf
        idx = gumbel_top_k(gain * logits, k, rng)
        is_sampled[idx] = 1.0
        chosen.append(idx)
    return np.concatenate(chosen)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--batch", type=int, required=True, help="sub-batch size b")
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--gain", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    load = lambda n: np.ascontiguousarray(np.load(os.path.join(a.inputs, n)), dtype=np.float32)
    li, lt = load("learner_image.npy"), load("learner_text.npy")
    ri, rt = load("reference_image.npy"), load("reference_text.npy")
    with open(os.path.join(a.inputs, "params.json")) as f:
        p = json.load(f)
    B, D = li.shape
    assert lt.shape == ri.shape == rt.shape == (B, D), "all four embedding arrays must be [B, D]"
    if not (1 <= a.chunks <= a.batch <= B):
        sys.exit(f"need 1 <= chunks <= batch <= B, got chunks={a.chunks} batch={a.batch} B={B}")
    rng = np.random.default_rng(a.seed)

    reset_peak()
    rss_before, vm_before = maxrss_bytes(), vmrss_bytes()
    t0 = time.perf_counter()
    S = sigmoid_nll_matrix(li, lt, p["learner_t"], p["learner_b"])
    R = sigmoid_nll_matrix(ri, rt, p["reference_t"], p["reference_b"])
    S -= R                                     # learnability, in place
    del R
    idx = jest_select(S, a.batch, a.chunks, a.gain, rng)
    seconds = time.perf_counter() - t0
    peak, vm_after = maxrss_bytes(), vmrss_bytes()

    # Mean learnability of a set K: sum_{i,j in K} S[i,j] / |K| (= learner minus reference sub-batch loss).
    sel = S[np.ix_(idx, idx)].sum(dtype=np.float64) / len(idx)
    sup = S.sum(dtype=np.float64) / B
    result = {
        "B": int(B), "D": int(D), "b": a.batch, "chunks": a.chunks, "gain": a.gain, "seed": a.seed,
        "seconds": seconds,
        "peak_rss_bytes": peak,             # process high-water mark after selection
        "rss_before_bytes": rss_before,     # high-water mark after loading (reset), before selection
        "vmrss_before_bytes": vm_before,    # current resident size before / after selection
        "vmrss_after_bytes": vm_after,
        "bb_matrix_bytes": int(B) * int(B) * 4,
        "indices": [int(i) for i in idx],
        "mean_learnability_selected": float(sel),
        "mean_learnability_superbatch": float(sup),
    }
    with open(a.out, "w") as f:
        json.dump(result, f)
        f.write("\n")
    print(f"B={B} D={D} b={a.batch} N={a.chunks}: {seconds:.3f}s, peak RSS {peak / 2**20:.1f} MiB, "
          f"learnability selected {sel:.4f} vs super-batch {sup:.4f}")


if __name__ == "__main__":
    main()
