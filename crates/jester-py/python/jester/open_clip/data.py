"""open_clip's own data pipelines, made to hand over super-batches *with their sample keys*.

open_clip builds its loaders in ``open_clip_train.data``; jester edits what they return rather
than rebuilding them, so every decoding, preprocessing and sharding choice stays open_clip's:

- **webdataset**: the pipeline's ``to_tuple("image", "text")`` stage also passes ``__key__`` (the
  key `jester embed` and `jester train` use: the member path up to the file name's first dot),
  ``batched(b)`` becomes ``batched(B / W)`` (the number of steps per epoch stays open_clip's), and
  two seeded stages replace what open_clip leaves to the clock or to the worker's history — the
  sample shuffle (open_clip seeds it with pid + time) and the random augmentations (seeded per epoch
  and pass in each worker) — so that a run resumed from an epoch checkpoint reads the same data.
- **CSV**: the dataset also returns its row's image path as the key (unique per row: checked), and
  one sampler replaces ``RandomSampler``/``DistributedSampler``: it draws its permutation exactly
  as ``RandomSampler`` does on rank 0 (so with one process and B = b a run reads what plain
  open_clip reads) and hands rank r the r-th slice of every global super-batch, so that W ranks
  read what one process with the same global batch reads. A super-batch never spans two
  permutations (so never holds a row twice): each permutation gives ``n // B`` super-batches and
  the rest of it is dropped, as ``drop_last`` drops the rest of an epoch.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import torch
import torch.distributed as dist
import webdataset as wds
from open_clip_train.data import CsvDataset, DataInfo, ResampledShards2, SharedEpoch
from torch.utils.data import DataLoader, Dataset, get_worker_info
from webdataset import filters as wds_filters

_MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 over them): distinct inputs, unrelated seeds."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & _MASK)) * 0xBF58476D1CE4E5B9 & _MASK
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & _MASK
        h ^= h >> 29
    return h & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators (those open_clip's transforms draw from)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


class _Passes:
    """Counts the passes over the data within an epoch (the pipeline restarts when it runs out)."""

    def __init__(self, epoch: SharedEpoch):
        self.epoch, self.seen, self.count = epoch, None, 0

    def next(self) -> tuple[int, int]:
        epoch = self.epoch.get_value()
        if epoch != self.seen:
            self.seen, self.count = epoch, 0
        self.count += 1
        return epoch, self.count - 1


def _worker() -> int:
    info = get_worker_info()
    return 0 if info is None else info.id


class EpochSeed(wds.PipelineStage):
    """Seeds the global generators of the process running the pipeline (a loader worker, or the
    trainer with --workers 0) from (seed, epoch, pass, rank, worker), before the first sample."""

    def __init__(self, seed: int, rank: int, epoch: SharedEpoch):
        self.seed, self.rank, self.passes = seed, rank, _Passes(epoch)

    def run(self, src):
        epoch, n = self.passes.next()
        seed_everything(mix(self.seed, 1, epoch, n, self.rank, _worker()))
        yield from src


class SeededShuffle(wds.PipelineStage):
    """open_clip's sample shuffle (same buffer sizes), with a seeded generator."""

    def __init__(self, bufsize: int, initial: int, seed: int, rank: int, epoch: SharedEpoch):
        self.bufsize, self.initial = bufsize, initial
        self.seed, self.rank, self.passes = seed, rank, _Passes(epoch)

    def run(self, src):
        epoch, n = self.passes.next()
        rng = random.Random(mix(self.seed, 2, epoch, n, self.rank, _worker()))
        return wds_filters._shuffle(src, self.bufsize, self.initial, rng)


def _stages(info: DataInfo) -> list:
    """The stage list of the DataPipeline inside open_clip's WebLoader."""
    loader = info.dataloader
    torch_loader = loader.pipeline[0]
    return torch_loader.dataset.pipeline


def _replace_one(stages: list, f, make) -> None:
    found = [i for i, s in enumerate(stages) if getattr(s, "f", None) is f]
    if len(found) != 1:
        raise RuntimeError(
            f"open_clip's webdataset pipeline has {len(found)} `{f.__name__}` stages, expected 1: "
            "it is not the pipeline jester.open_clip was written for (open_clip_torch 3.3.0)"
        )
    stages[found[0]] = make(stages[found[0]])


def keyed_webdataset(
    info: DataInfo, *, batch: int, seed: int | None = None, rank: int = 0, split_by_node=False
) -> DataInfo:
    """Edits open_clip's webdataset loader in place: batches of ``batch`` rows carrying their keys
    (image, text, keys); with ``seed``, the seeded shuffle and augmentations (training);
    with ``split_by_node``, each rank reads its own shards (open_clip's eval pipeline does not)."""
    stages = _stages(info)
    _replace_one(stages, wds_filters._to_tuple, lambda s: wds.to_tuple(*s.args, "__key__"))
    _replace_one(stages, wds_filters._batched, lambda s: wds.batched(batch, **s.kw))
    if seed is not None:
        epoch = info.shared_epoch
        _replace_one(
            stages,
            wds_filters._shuffle,
            lambda s: SeededShuffle(
                s.kw.get("bufsize", s.args[0] if s.args else 1000),
                s.kw.get("initial", s.args[1] if len(s.args) > 1 else 100),
                seed,
                rank,
                epoch,
            ),
        )
        stages.insert(1, EpochSeed(seed, rank, epoch))
        if isinstance(stages[0], ResampledShards2):
            # Otherwise seeded from the loader's base seed, drawn when the workers start.
            stages[0].worker_seed = WorkerSeed(seed, rank)
    if split_by_node:
        stages.insert(1, wds.split_by_node)
    return info


class WorkerSeed:
    """``ResampledShards2.worker_seed``: from (seed, rank, loader worker); a class, not a lambda,
    so the pipeline pickles into workers started with ``spawn``."""

    def __init__(self, seed: int, rank: int):
        self.seed, self.rank = seed, rank

    def __call__(self) -> int:
        return mix(self.seed, 3, self.rank, _worker())


class KeyedCsv(Dataset):
    """open_clip's CsvDataset, each row also giving its key: the image path as the CSV has it."""

    def __init__(self, csv: CsvDataset):
        self.csv = csv

    def __len__(self) -> int:
        return len(self.csv)

    def __getitem__(self, i: int):
        image, text = self.csv[i]
        return image, text, str(self.csv.images[i])


class GlobalBatchSampler:
    """Rank ``rank``'s slice of each global batch of ``local * world`` rows, from one stream of
    permutations of the ``n`` rows that every rank draws alike.

    The permutation's seed is drawn from torch's global generator when iteration starts, as
    ``RandomSampler`` draws it, and rank 0's is broadcast: with one rank and one permutation per
    epoch this is ``BatchSampler(RandomSampler(n), local, drop_last=True)`` exactly. Each
    permutation gives ``n // (local * world)`` global batches; its remaining rows are dropped, so
    no batch spans two permutations (none holds a row twice)."""

    def __init__(self, n: int, local: int, world: int, rank: int, batches: int):
        if n < local * world:
            raise ValueError(f"{n} rows: fewer than one global batch of {local * world}")
        self.n, self.local, self.world, self.rank, self.batches = n, local, world, rank, batches

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        if self.world > 1:
            box = [seed]
            dist.broadcast_object_list(box, src=0)
            seed = box[0]
        generator = torch.Generator()
        generator.manual_seed(seed)
        width = self.local * self.world
        per_permutation = self.n // width
        for k in range(self.batches):
            if k % per_permutation == 0:
                order = torch.randperm(self.n, generator=generator)
            start = (k % per_permutation) * width + self.rank * self.local
            yield order[start : start + self.local].tolist()


def keyed_csv(
    info: DataInfo, *, batch: int, trained: int, world: int, rank: int, workers: int
) -> DataInfo:
    """A loader over open_clip's CsvDataset giving (image, text, keys) batches of ``batch`` rows
    per rank; an epoch is ``n // trained`` steps (``trained``: the global batch b)."""
    csv = info.dataloader.dataset
    if not isinstance(csv, CsvDataset):
        raise TypeError(f"expected open_clip's CsvDataset, got {type(csv).__name__}")
    batches = len(csv) // trained
    if batches == 0 or len(csv) < batch * world:
        raise RuntimeError(
            f"the CSV has {len(csv)} rows: fewer than one global super-batch of {batch * world}"
        )
    loader = DataLoader(
        KeyedCsv(csv),
        batch_sampler=GlobalBatchSampler(len(csv), batch, world, rank, batches),
        num_workers=workers,
        pin_memory=True,
    )
    loader.num_batches = batches
    loader.num_samples = batches * trained
    return replace(info, dataloader=loader, sampler=None)
