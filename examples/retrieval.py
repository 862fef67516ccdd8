"""Held-out retrieval computed as `jester eval` computes it (crates/jester/src/eval/rank.rs):
pessimistic ties, and examples whose captions tokenise identically answer for each other."""

from __future__ import annotations

import torch


def caption_groups(ids: torch.Tensor) -> torch.Tensor:
    """A caption identity per example `[n]`: equal token rows (after truncation) are one caption,
    since the text tower cannot tell them apart (eval/rank.rs `caption_groups`)."""
    return torch.unique(ids, dim=0, return_inverse=True)[1]


def recall(
    queries: torch.Tensor, candidates: torch.Tensor, groups: torch.Tensor
) -> dict:
    """R@1, 5, 10 with pessimistic ties: the rank of the best right answer is the number of wrong
    candidates scoring at least as high (NaN never ranks below anything)."""
    similarity = queries @ candidates.T
    right = groups[:, None] == groups[None, :]
    best = similarity.masked_fill(~right, float("-inf")).amax(dim=1, keepdim=True)
    rank = ((~(similarity < best)) & ~right).sum(dim=1)
    return {f"r{k}": (rank < k).double().mean().item() for k in (1, 5, 10)}
