"""JEST selection over a data-parallel super-batch, under an initialised ``torch.distributed``
process group (gloo or NCCL), as a data-parallel step needs it (the repo's docs/ARCHITECTURE.md).

Every rank holds its own B / W candidates. The embeddings are all-gathered, every rank computes the
same selection from the same seed, and every chunk takes the same number of examples from each
rank's candidates, conditioned on everything chosen before on every rank: each rank keeps
``batch_size / W`` of its own candidates. With one process this is exactly :func:`jester.select`.

    mine, summary = jester.distributed.select(learner, reference, batch_size=4096, seed=step)
    loss = sigmoid_loss(zi[mine], zt[mine], ...)   # zi, zt: this rank's candidates
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from . import _jester
from ._jester import Embeddings


def _gather(x: torch.Tensor, group) -> torch.Tensor:
    world = dist.get_world_size(group)
    out = torch.empty((world * x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
    dist.all_gather_into_tensor(out, x.contiguous(), group=group)
    return out


def collective_device(group, like: torch.device) -> torch.device:
    """Where the group's collectives can move tensors: NCCL moves only CUDA tensors (this rank's
    current GPU), gloo moves the tensors where they are."""
    if dist.get_backend(group) == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return like


def gather_embeddings(
    e: Embeddings | None, group=None, device: torch.device | None = None
) -> Embeddings | None:
    """Every rank's rows of ``e``, rank by rank, on ``device`` (default: where ``e`` is; under
    NCCL, use :func:`collective_device`). Without gradient: the gathered rows are constants, as
    the reference's are. ``None`` stays ``None``."""
    if e is None:
        return None
    device = e.image.device if device is None else device
    image, text = e.image.to(device), e.text.to(device)
    return Embeddings(_gather(image, group), _gather(text, group), e.t, e.b)


def select(
    learner: Embeddings,
    reference: Embeddings | None,
    batch_size: int,
    *,
    method: str = "joint",
    score: str = "learnability",
    loss: str = "sigmoid",
    chunks: int = 16,
    gain: float = 100.0,
    seed: int = 0,
    summary: bool = False,
    group=None,
):
    """Global selection of ``batch_size`` examples over every rank's candidates.

    ``learner`` (and ``reference``) hold this rank's candidates; every rank must pass the same
    number of them, the same ``batch_size`` (global, a multiple of the world size) and the same
    ``seed``. Returns (this rank's own selected rows as local indices into its candidates, in
    selection order; the selection's summary, with ``global_indices`` into the gathered
    super-batch).
    """
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "jester.distributed.select needs an initialised torch.distributed process group "
            "(torch.distributed.init_process_group, e.g. under torchrun); use jester.select otherwise"
        )
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    local = len(learner)
    # CPU embeddings (e.g. ReferenceCache.lookup's default) under NCCL go to this rank's GPU for
    # the gathers; the selected rows come back on the learner's own device.
    home = learner.image.device
    device = collective_device(group, home)
    sizes = _gather(torch.tensor([local], device=device), group)
    if not bool((sizes == local).all()):
        raise ValueError(
            f"learner: ranks hold {sizes.tolist()} candidates; every rank must hold the same number"
        )
    if batch_size % world != 0:
        raise ValueError(f"batch_size = {batch_size}: must be a multiple of the world size {world}")
    indices, summary = _jester.select(
        gather_embeddings(learner, group, device),
        gather_embeddings(reference, group, device),
        batch_size,
        method=method,
        score=score,
        loss=loss,
        chunks=chunks,
        gain=gain,
        seed=seed,
        summary=summary,
        groups=world,
    )
    indices = indices.to(home)
    low = rank * local
    mine = indices[(indices >= low) & (indices < low + local)] - low
    summary["global_indices"] = indices
    return mine, summary
