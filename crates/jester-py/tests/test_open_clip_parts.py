"""The pieces of jester.open_clip on their own, without open_clip's trainer running: the step loop's
timing windows and step numbers (with and without --accum-freq), the one-process twin's row
order, the ranks' agreement on a key missing mid-run, the DDP class patched in, the CSV sampler,
and the webdataset worker seed under spawn."""

from __future__ import annotations

import contextlib
import pickle
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import jester
from open_clip_support import require_open_clip

require_open_clip()

from jester.open_clip.flags import FlagError, JestFlags, Sizes
from jester.open_clip.loop import Distiller, Flops, LossRecorder, SelectingLoader
from jester.open_clip.scoring import References, Scorer, Selected


class Towers(torch.nn.Module):
    """A stand-in for an open_clip model: both towers a linear map of the flattened input."""

    def __init__(self, dim: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.image, self.text = torch.nn.LazyLinear(dim), torch.nn.LazyLinear(dim)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.3))
        self.logit_bias = torch.nn.Parameter(torch.tensor(-10.0))

    def encode_image(self, x, normalize=False):
        z = self.image(x.flatten(1).float())
        return torch.nn.functional.normalize(z, dim=-1) if normalize else z

    def encode_text(self, x, normalize=False):
        z = self.text(x.flatten(1).float())
        return torch.nn.functional.normalize(z, dim=-1) if normalize else z


class Batches:
    """open_clip's keyed loader: ``n`` super-batches of ``rows`` (image, text, keys)."""

    def __init__(self, n: int, rows: int):
        self.num_batches, self.num_samples, self.rows = n, n * rows, rows

    def __iter__(self):
        for k in range(self.num_batches):
            keys = [f"{k}-{j}" for j in range(self.rows)]
            yield torch.randn(self.rows, 3, 2, 2), torch.randn(self.rows, 5), keys


class FakeScorer:
    """Selects the first b rows; its seconds are known: score = batch + 1, select 0.5, summary 10
    (on the steps asked for a summary, 0 otherwise)."""

    def __init__(self, b: int):
        self.b, self.calls = b, []

    def __call__(self, model, images, texts, keys, batch, summary):
        self.calls.append((batch, summary))
        return Selected(
            indices=torch.arange(self.b),
            summary={"selected": 1.0, "uniform": 0.0} if summary else None,
            score_seconds=batch + 1.0,
            select_seconds=0.5,
            summary_seconds=10.0 if summary else 0.0,
        )


class Records:
    keys_path = None

    def __init__(self):
        self.records = []

    def write(self, record):
        self.records.append(record)


def run_loader(*, batches: int, accum: int, every: int, epoch: int = 0):
    scorer, log = FakeScorer(2), Records()
    recorder = LossRecorder(torch.nn.Identity())
    recorder.last = torch.tensor(1.5)
    loader = SelectingLoader(
        Batches(batches, 4),
        model=Towers(),
        epoch=epoch,
        args=SimpleNamespace(device="cpu", accum_freq=accum, log_every_n_steps=every),
        scorer=scorer,
        flops=Flops(2, 4, True, accum=accum),
        recorder=recorder,
        log=log,
        input_dtype=torch.float32,
    )
    trained = [len(images) for images, _ in loader]
    assert trained == [2] * batches
    return scorer.calls, log.records


def test_every_step_is_timed_and_logged_as_its_windows_mean():
    """7 steps logged every 3 (open_clip logs steps 0, 3 and the epoch's last, 6): the windows are
    steps {0}, {1, 2, 3}, {4, 5, 6}, and each phase's number is its mean over the window; the
    summary is computed on the logged steps only and timed apart from the selection."""
    calls, records = run_loader(batches=7, accum=1, every=3)
    assert calls == [(i, i in (0, 3, 6)) for i in range(7)]
    assert [r.step for r in records] == [0, 3, 6]
    assert [r.steps_timed for r in records] == [1, 3, 3]
    assert [r.score_seconds for r in records] == [1.0, 3.0, 6.0]  # means of batch + 1
    assert [r.select_seconds for r in records] == [0.5, 0.5, 0.5]
    assert [r.summary_seconds for r in records] == pytest.approx([10.0, 10 / 3, 10 / 3])
    assert all(
        isinstance(r.wait_seconds, float) and isinstance(r.train_seconds, float) for r in records
    )  # measured, so only their presence is checked
    assert all(r.loss == 1.5 and r.learnability_selected == 1.0 for r in records)


def test_with_accum_freq_records_follow_open_clips_steps_and_seeds_follow_super_batches():
    """--accum-freq 2, epoch 1 of 8 super-batches: open_clip's steps 4..7 (4 a epoch), each
    logged once with both its super-batches' seconds; selection seeds count super-batches
    (8..15); FLOPs and examples count both."""
    calls, records = run_loader(batches=8, accum=2, every=1, epoch=1)
    assert calls == [(8 + i, i % 2 == 1) for i in range(8)]
    assert [r.step for r in records] == [4, 5, 6, 7]
    assert [r.steps_timed for r in records] == [1, 1, 1, 1]
    assert [r.score_seconds for r in records] == [9 + 10, 11 + 12, 13 + 14, 15 + 16]
    f = records[0].flops_uniform_step / (3 * 2 * 2)
    assert records[0].flops_step == 2 * (3 * f * 2 + f * 4)
    assert records[0].examples_drawn == 5 * 2 * 4 and records[0].examples_trained == 5 * 2 * 2


def _embeddings(n: int, d: int, seed: int) -> jester.Embeddings:
    g = torch.Generator().manual_seed(seed)
    unit = [torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1) for _ in "it"]
    return jester.Embeddings(*unit, 10.0, -10.0)


def scorer(sizes: Sizes, **flags) -> Scorer:
    flags = JestFlags(**flags)
    cpu, autocast = torch.device("cpu"), contextlib.nullcontext
    return Scorer(
        flags,
        sizes,
        siglip=True,
        seed=0,
        device=cpu,
        autocast=autocast,
        references=References(flags, sizes, device=cpu, autocast=autocast),
    )


def test_the_distillation_term_is_w_times_jesters_kd_with_open_clips_t_and_b():
    """open_clip's --siglip model output (t = exp(logit_scale), its bias) reaches the per-pair
    binary KD with gradients in features, t and b; the recorder adds it as `distill_loss`; a
    batch the loader did not hand over is an error, not a silent KD on stale rows."""
    reference = _embeddings(8, 4, seed=2)
    learner = _embeddings(8, 4, seed=3)
    image, text = (x.clone().requires_grad_() for x in (learner.image, learner.text))
    scale = torch.tensor(2.3, requires_grad=True)
    bias = torch.tensor(-5.0, requires_grad=True)
    distiller = Distiller(0.3, "sigmoid", world=1)
    recorder = LossRecorder(lambda **kw: {"contrastive_loss": torch.tensor(1.0)}, distiller)
    distiller.give(reference)
    out = recorder(image_features=image, text_features=text, logit_scale=scale.exp(),
                   logit_bias=bias, output_dict=True)  # fmt: skip
    expected = 0.3 * jester.distill_loss(image, text, scale.exp(), bias, reference, loss="sigmoid")
    torch.testing.assert_close(out["distill_loss"], expected)
    assert recorder.last == pytest.approx(1.0 + expected.item())
    out["distill_loss"].backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in (image, text, scale, bias))
    with pytest.raises(RuntimeError, match="no reference rows for this batch"):
        distiller(image_features=image, text_features=text, logit_scale=scale.exp())


def test_the_one_process_twin_trains_its_rows_group_by_group():
    """One process selecting as 2 ranks would (--jest-selection-groups 2, B = 16, b = 8): the rows
    are trained in the order the 2 ranks' gathered features have, rank 0's (rows 0..7) in
    selection order, then rank 1's (rows 8..15)."""
    twin = scorer(Sizes(batch=8, super_batch=16, world=1, groups=2), chunks=4, score="hard-learner")
    learner = _embeddings(16, 8, seed=1)
    interleaved = 0
    for seed in range(10):
        raw, _ = jester.select(learner, None, 8, score="hard_learner", chunks=4, groups=2,
                               seed=seed)  # fmt: skip
        raw = raw.tolist()
        ordered = [i for i in raw if i < 8] + [i for i in raw if i >= 8]
        got, _ = twin._select(learner, None, seed, summary=False)
        assert got.tolist() == ordered, seed
        interleaved += raw != ordered
    assert interleaved > 0, "selection order interleaves the groups: the reordering is exercised"


def _missing_on_one_rank(rank: int, store_path: str, cache: str, out) -> None:
    store = dist.FileStore(store_path, 2)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))  # fmt: skip
    try:
        flags = JestFlags(reference=Path(cache), chunks=1)
        sizes = Sizes(batch=4, super_batch=8, world=2, groups=2)
        cpu, autocast = torch.device("cpu"), contextlib.nullcontext
        references = References(flags, sizes, device=cpu, autocast=autocast,
                                cache=jester.ReferenceCache(cache))  # fmt: skip
        s = Scorer(flags, sizes, siglip=True, seed=0, device=cpu, autocast=autocast,
                   references=references)  # fmt: skip
        keys = [f"r{rank}-{j}" for j in range(4)]
        try:
            s(Towers(), torch.randn(4, 3, 2, 2), torch.randn(4, 5), keys, step=0, summary=False)
            out[rank] = "selected"
        except FlagError as e:
            out[rank] = str(e)
    finally:
        dist.destroy_process_group()


def test_a_key_missing_on_one_rank_fails_every_rank(tmp_path):
    """Without the pre-training check (--jest-skip-key-check, or pipe:/URL shards), rank 1 draws a
    key the cache lacks: both ranks fail with the error, none waits in the selection's gather."""
    path = tmp_path / "cache.safetensors"
    writer = jester.ReferenceCacheWriter(str(path))
    keys = [f"r{r}-{j}" for r in (0, 1) for j in range(4) if (r, j) != (1, 2)]
    unit = torch.nn.functional.normalize(torch.randn(len(keys), 4), dim=1)
    writer.append(keys, unit, unit)
    writer.finish(10.0, -10.0)
    with mp.Manager() as manager:
        out = manager.dict()
        context = mp.spawn(_missing_on_one_rank, args=(str(tmp_path / "store"), str(path), out),
                           nprocs=2, join=False)  # fmt: skip
        deadline = time.monotonic() + 120
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                for p in context.processes:
                    p.kill()
                pytest.fail("a rank is still waiting after the other failed")
        results = dict(out)
    for rank in (0, 1):
        assert f"--jest-reference {path}" in results[rank], rank
        assert '"r1-2"' in results[rank] and "ranks [1]" in results[rank], results[rank]


def test_the_ddp_class_open_clip_wraps_with_drops_cpu_device_ids_and_stays_a_ddp(tmp_path):
    """open_clip calls DistributedDataParallel(model, device_ids=[device]); torch 2.11 refuses
    that for a CPU module. The class patched in for the run is a subclass, so isinstance against
    torch's DDP (as torch._dynamo checks) still holds, and the original is back afterwards."""
    import open_clip_train.main as oc_main

    from jester.open_clip.trainer import Run

    ddp = torch.nn.parallel.DistributedDataParallel
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        with Run(JestFlags(method="uniform"), oc_main).installed():
            wrapped = torch.nn.parallel.DistributedDataParallel(
                torch.nn.Linear(2, 2), device_ids=[torch.device("cpu")]
            )
            assert isinstance(wrapped, ddp)
            assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel), "a class"
            assert isinstance(wrapped, torch.nn.parallel.distributed.DistributedDataParallel)
            assert torch.nn.parallel.DistributedDataParallel is not ddp
        assert torch.nn.parallel.DistributedDataParallel is ddp
        with pytest.raises(ValueError):
            ddp(torch.nn.Linear(2, 2), device_ids=[torch.device("cpu")])
    finally:
        dist.destroy_process_group()


def test_the_csv_sampler_never_repeats_a_row_within_a_super_batch(monkeypatch):
    """B = 30 of n = 100 rows: each permutation gives 3 super-batches and drops its last 10, so no
    super-batch spans two permutations; W ranks read the slices of one rank's global batches (the
    broadcast of rank 0's seed stood in for by seeding both alike)."""
    from jester.open_clip import data
    from jester.open_clip.data import GlobalBatchSampler

    monkeypatch.setattr(data.dist, "broadcast_object_list", lambda box, src: None)
    for seed in range(20):
        torch.manual_seed(seed)
        batches = list(GlobalBatchSampler(100, 30, 1, 0, batches=7))
        assert all(len(set(b)) == 30 for b in batches), seed
        for first in (0, 3):
            rows = [i for b in batches[first : first + 3] for i in b]
            assert len(set(rows)) == 90, "one permutation's super-batches are disjoint"
        ranks = []
        for r in (0, 1):
            torch.manual_seed(seed)
            ranks.append(list(GlobalBatchSampler(100, 15, 2, r, batches=7)))
        assert [a + b for a, b in zip(*ranks)] == batches
    with pytest.raises(ValueError, match="fewer than one global batch of 120"):
        GlobalBatchSampler(100, 60, 2, 0, batches=1)


def test_the_webdataset_worker_seed_pickles_for_spawned_workers():
    from jester.open_clip.data import WorkerSeed, mix

    seed = pickle.loads(pickle.dumps(WorkerSeed(5, 1)))
    assert seed() == mix(5, 3, 1, 0)
