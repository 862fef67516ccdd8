"""jester.distributed.select under real torch.distributed process groups (gloo, CPU): two ranks
give each rank its quota of the same global selection that one process computes with two groups,
and one rank is exactly jester.select."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import jester

B, D, BATCH, CHUNKS, SEED = 256, 32, 64, 4, 11


def _embeddings(seed: int):
    g = torch.Generator().manual_seed(seed)
    zi = torch.nn.functional.normalize(torch.randn(B, D, generator=g), dim=1)
    zt = torch.nn.functional.normalize(zi + 0.7 * torch.randn(B, D, generator=g), dim=1)
    ri = torch.nn.functional.normalize(zi + 0.2 * torch.randn(B, D, generator=g), dim=1)
    rt = torch.nn.functional.normalize(zt + 0.2 * torch.randn(B, D, generator=g), dim=1)
    return zi, zt, ri, rt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, out: dict) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        zi, zt, ri, rt = _embeddings(0)
        share = slice(rank * B // world, (rank + 1) * B // world)
        learner = jester.Embeddings(zi[share], zt[share], 10.0, -10.0)
        reference = jester.Embeddings(ri[share], rt[share], 10.0, -10.0)
        mine, summary = jester.distributed.select(
            learner, reference, BATCH, chunks=CHUNKS, seed=SEED
        )
        out[rank] = (mine.tolist(), summary["global_indices"].tolist())
    finally:
        dist.destroy_process_group()


def _run(world: int) -> dict:
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_rank, args=(world, _free_port(), out), nprocs=world, join=True)
    return dict(out)


def test_two_ranks_get_their_quotas_of_the_one_process_grouped_selection():
    out = _run(2)
    zi, zt, ri, rt = _embeddings(0)
    twin, _ = jester.select(
        jester.Embeddings(zi, zt, 10.0, -10.0),
        jester.Embeddings(ri, rt, 10.0, -10.0),
        BATCH,
        chunks=CHUNKS,
        seed=SEED,
        groups=2,
    )
    twin = twin.tolist()
    assert out[0][1] == twin and out[1][1] == twin, "every rank computes the same selection"
    half = B // 2
    assert out[0][0] == [i for i in twin if i < half]
    assert out[1][0] == [i - half for i in twin if i >= half]
    assert len(out[0][0]) == len(out[1][0]) == BATCH // 2


def test_one_rank_is_the_plain_selection():
    out = _run(1)
    zi, zt, ri, rt = _embeddings(0)
    plain, _ = jester.select(
        jester.Embeddings(zi, zt, 10.0, -10.0),
        jester.Embeddings(ri, rt, 10.0, -10.0),
        BATCH,
        chunks=CHUNKS,
        seed=SEED,
    )
    assert out[0][0] == plain.tolist()


def test_without_a_process_group_it_says_what_to_do():
    zi, zt, _, _ = _embeddings(0)
    with pytest.raises(RuntimeError, match="init_process_group"):
        jester.distributed.select(jester.Embeddings(zi, zt, 10.0, -10.0), None, 8)
