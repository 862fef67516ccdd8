"""``python -m jester ARGS``: the ``jester`` command line, in this Python process.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT`` set by
it), ``train`` and ``embed`` run data-parallel: this module starts PyTorch's own process group —
NCCL when the run uses CUDA (each rank on ``cuda:LOCAL_RANK``), gloo on the CPU — and the Rust
command calls ``torch.distributed`` for every collective, on the very tensors its step uses (the
repo's docs/ARCHITECTURE.md, "Many processes")::

    torchrun --standalone --nproc-per-node 8 -m jester train --data pool/ --out run/ ...

``JESTER_DIST_TIMEOUT`` (seconds, default 1800, PyTorch's own default) bounds how long a rank waits for the others in a
collective before failing, e.g. when a peer died.
"""

from __future__ import annotations

import datetime
import os
import sys

import torch
import torch.distributed as dist

from . import _jester


class _TorchOps:
    """The four primitives the Rust ``ProcessGroup`` needs, on ``torch.distributed``."""

    def __init__(self, world: int, device_ids: list[int] | None):
        self.world = world
        self.device_ids = device_ids

    def all_gather(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty((self.world * x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
        dist.all_gather_into_tensor(out, x.contiguous())
        return out

    def all_reduce_sum(self, x: torch.Tensor) -> None:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)

    def broadcast(self, x: torch.Tensor, root: int) -> None:
        dist.broadcast(x, src=root)

    def barrier(self) -> None:
        dist.barrier(device_ids=self.device_ids)


def _device_flag(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--device" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--device="):
            return arg.split("=", 1)[1]
    return "auto"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return _jester.cli(argv)
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    timeout = datetime.timedelta(seconds=float(os.environ.get("JESTER_DIST_TIMEOUT", "1800")))
    device = _device_flag(argv)
    cuda = torch.cuda.is_available() and device != "cpu"
    if cuda and device not in ("auto", "cuda") and world > 1:
        print(
            f"error: --device {device}: under torchrun every rank uses its own GPU "
            "(cuda:LOCAL_RANK); pass --device auto or cuda, and choose GPUs with "
            "CUDA_VISIBLE_DEVICES",
            file=sys.stderr,
        )
        return 2
    if cuda:
        index = local_rank if device in ("auto", "cuda") else int(device.split(":", 1)[1])
        torch.cuda.set_device(index)
        buffers, backend, device_ids = f"cuda:{index}", "nccl", [index]
    else:
        buffers, backend, device_ids = "cpu", "gloo", None
    dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=timeout)
    try:
        code = _jester.cli(
            argv,
            _TorchOps(world, device_ids),
            rank=rank,
            world=world,
            local_rank=local_rank,
            device=buffers,
        )
    finally:
        dist.destroy_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
