"""JEST (joint example selection, Evans et al. 2024, arXiv:2406.17711) on PyTorch tensors.

Score a super-batch with the learner and a frozen reference, and keep the sub-batch whose joint
learnability is high, chunk by chunk (the repo's docs/ALGORITHM.md). Tensors cross into jester's
Rust engine without copies, on their own device; selection releases the GIL.

    import torch, jester
    learner = jester.Embeddings(zi, zt, t=logit_scale.exp().item(), b=logit_bias.item())
    reference = cache.lookup(keys, device="cuda")       # a jester.ReferenceCache
    indices, summary = jester.select(learner, reference, zi.shape[0] // 5)
    loss = jester.sigmoid_loss(zi[indices], zt[indices], logit_scale.exp(), logit_bias)
"""

# libtorch and its Python bindings must be loaded before the extension that links them.
import torch  # noqa: F401

from . import distributed
from ._jester import (
    Embeddings,
    ReferenceCache,
    ReferenceCacheWriter,
    distill_loss,
    scores,
    select,
    sigmoid_loss,
    softmax_loss,
)

__all__ = [
    "Embeddings",
    "ReferenceCache",
    "ReferenceCacheWriter",
    "distill_loss",
    "distributed",
    "scores",
    "select",
    "sigmoid_loss",
    "softmax_loss",
]
__version__ = "0.1.0"
