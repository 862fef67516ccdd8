"""`jester.select`: what a selection is (b distinct indices of the super-batch, in chunks),
determinism under a seed, how the methods relate (independent = joint with one chunk; a very high
gain takes the top-b scores; groups take equal quotas), and that it runs with the GIL released."""

from __future__ import annotations

import threading

import pytest
import torch

import jester
from conftest import random_pair

B, D, BATCH = 300, 16, 60


@pytest.fixture(scope="module")
def models():
    li, lt = random_pair(1, B, D, normalised=False)
    ri, rt = random_pair(2, B, D, normalised=False)
    return jester.Embeddings(li, lt, 10.0, -5.0), jester.Embeddings(ri, rt, 7.5, -2.25)


@pytest.mark.parametrize(
    ("method", "chunks", "expected_chunks"),
    [("joint", 6, 6), ("joint", 7, 7), ("independent", 6, 1), ("uniform", 6, 1)],
)
@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_selection_is_a_sub_batch_in_chunks(models, method, chunks, expected_chunks, loss):
    learner, reference = models
    indices, summary = jester.select(
        learner, reference, BATCH, method=method, chunks=chunks, loss=loss, seed=3, summary=True
    )
    assert indices.dtype == torch.int64 and indices.device.type == "cpu"
    assert indices.shape == (BATCH,)
    assert len(set(indices.tolist())) == BATCH
    assert 0 <= int(indices.min()) and int(indices.max()) < B
    sizes = summary["chunk_sizes"]
    assert len(sizes) == expected_chunks and sum(sizes) == BATCH
    if method == "joint":
        # Equal chunks, the last taking the remainder.
        assert sizes[:-1] == [BATCH // chunks] * (chunks - 1)
    assert summary["score"] == "learnability"
    assert isinstance(summary["selected"], float) and isinstance(summary["uniform"], float)


def test_seed_decides_the_selection(models):
    learner, reference = models
    first, _ = jester.select(learner, reference, BATCH, chunks=4, seed=11)
    again, _ = jester.select(learner, reference, BATCH, chunks=4, seed=11)
    other, _ = jester.select(learner, reference, BATCH, chunks=4, seed=12)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_the_default_summary_leaves_out_the_scores(models):
    learner, reference = models
    _, summary = jester.select(learner, reference, BATCH, chunks=4)
    assert summary == {"chunk_sizes": [15, 15, 15, 15], "score": "learnability"}


def test_learnability_selection_beats_uniform_and_hard_learner_ignores_reference(models):
    learner, reference = models
    _, summary = jester.select(learner, reference, BATCH, chunks=4, summary=True)
    assert summary["selected"] > summary["uniform"]
    alone, s_alone = jester.select(learner, None, BATCH, score="hard_learner", chunks=4)
    given, s_given = jester.select(learner, reference, BATCH, score="hard-learner", chunks=4)
    assert torch.equal(alone, given)
    assert s_alone == s_given and s_alone["score"] == "hard_learner"


@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_independent_is_joint_with_one_chunk(models, loss):
    learner, reference = models
    independent, _ = jester.select(learner, reference, BATCH, method="independent", loss=loss)
    joint, _ = jester.select(learner, reference, BATCH, method="joint", chunks=1, loss=loss)
    assert torch.equal(independent, joint)


@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_high_gain_independent_selection_takes_the_top_scores(models, loss):
    """With the noise negligible against gain × score, independent selection is the top b of the
    per-example scores: each pair's own learnability for the sigmoid loss (its score as a batch of
    one), its learnability within the super-batch (`jester.scores`) for the softmax loss."""
    learner, reference = models
    indices, _ = jester.select(learner, reference, BATCH, method="independent", loss=loss, gain=1e6)
    if loss == "sigmoid":

        def own(e):
            logit = e.t * (e.image * e.text).sum(1) + e.b
            return torch.nn.functional.softplus(-logit)

        score = own(learner) - own(reference)
    else:
        score = jester.scores(learner, reference, loss="softmax")
    assert sorted(indices.tolist()) == sorted(score.topk(BATCH).indices.tolist())


def test_groups_take_equal_quotas(models):
    learner, reference = models
    one, _ = jester.select(learner, reference, BATCH, chunks=4, groups=1)
    default, _ = jester.select(learner, reference, BATCH, chunks=4)
    assert torch.equal(one, default)
    grouped, summary = jester.select(learner, reference, BATCH, chunks=4, groups=3)
    per_group = torch.bincount(grouped // (B // 3), minlength=3)
    assert per_group.tolist() == [BATCH // 3] * 3
    assert sum(summary["chunk_sizes"]) == BATCH


def test_strided_input_selects_like_contiguous(models):
    learner, reference = models
    image = learner.image.t().contiguous().t()  # the same values, column-major
    assert not image.is_contiguous()
    strided = jester.Embeddings(image, learner.text, learner.t, learner.b)
    a, _ = jester.select(learner, reference, BATCH, chunks=4)
    b, _ = jester.select(strided, reference, BATCH, chunks=4)
    assert torch.equal(a, b)


def test_select_releases_the_gil():
    """While `select` runs on another thread, this thread keeps running Python: with the GIL held
    it could not run a single line until `select` returned. Judged by progress, not by time: the
    work doubles until this thread has counted enough during one call (however fast the machine),
    and a held GIL would leave the count at zero at any size."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # leave the other core to this thread
    try:
        counted, n = 0, 4_000
        while counted < 1_000 and n <= 128_000:
            li, lt = random_pair(5, n, 64)
            learner = jester.Embeddings(li, lt, 10.0, -5.0)
            worker = threading.Thread(
                target=jester.select,
                args=(learner, None, n // 5),
                kwargs={"score": "hard_learner", "chunks": 16, "summary": False},
            )
            counted = 0
            worker.start()
            while worker.is_alive():
                counted += 1
            worker.join()
            n *= 2
    finally:
        torch.set_num_threads(threads)
    assert counted >= 1_000, f"this thread ran {counted} loops while select ran (B up to {n // 2})"


def test_uniform_selection_without_reference_and_summary(models):
    learner, _ = models
    indices, summary = jester.select(learner, None, BATCH, method="uniform", summary=False)
    assert len(set(indices.tolist())) == BATCH and summary["chunk_sizes"] == [BATCH]


def test_gain_zero_samples_uniformly_without_replacement_as_the_cli_does(models):
    """gain 0 multiplies every score by zero: all candidates weigh the same."""
    learner, reference = models
    a, _ = jester.select(learner, reference, BATCH, chunks=4, gain=0.0, seed=3)
    assert len(set(a.tolist())) == BATCH
    # Scores do not matter: another learner and reference pick the same rows.
    flipped = jester.Embeddings(learner.text, learner.image, learner.t, learner.b)
    b, _ = jester.select(flipped, learner, BATCH, chunks=4, gain=0.0, seed=3)
    assert a.tolist() == b.tolist()
    c, _ = jester.select(learner, reference, BATCH, chunks=4, gain=100.0, seed=3)
    assert a.tolist() != c.tolist(), "with a gain the scores decide"
    with pytest.raises(ValueError, match=r"^gain = -1"):
        jester.select(learner, reference, BATCH, gain=-1.0)


def test_any_u64_seed_is_taken_as_jester_train_takes_it(models):
    learner, reference = models
    a, _ = jester.select(learner, reference, BATCH, chunks=4, seed=2**64 - 1)
    b, _ = jester.select(learner, reference, BATCH, chunks=4, seed=2**64 - 1)
    assert a.tolist() == b.tolist()
    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match=rf"^seed = {bad}: must be an integer"):
            jester.select(learner, reference, BATCH, seed=bad)


def test_uniform_selection_needs_no_reference(models):
    learner, _ = models
    indices, _ = jester.select(learner, None, BATCH, method="uniform")
    assert len(set(indices.tolist())) == BATCH


def test_a_reference_of_another_width_is_a_model_of_its_own(models):
    # Learner and reference are different models: their embedding widths may differ.
    learner, reference = models
    narrow = jester.Embeddings(
        reference.image[:, :5].contiguous(),
        reference.text[:, :5].contiguous(),
        reference.t,
        reference.b,
    )
    indices, _ = jester.select(learner, narrow, BATCH, chunks=4)
    assert len(set(indices.tolist())) == BATCH
