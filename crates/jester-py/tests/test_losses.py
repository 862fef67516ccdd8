"""`jester.sigmoid_loss`, `jester.softmax_loss` and `jester.scores` against plain-PyTorch
implementations: SigLIP's summed pairwise sigmoid NLL, CLIP's symmetric cross-entropy, and
per-example scores (learner minus reference row sums); values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import jester
from conftest import random_pair, unit_rows

N, D = 48, 16


def siglip_loss(zi, zt, t, b):
    logits = t * zi @ zt.T + b
    labels = 2 * torch.eye(len(zi), dtype=zi.dtype) - 1
    return -F.logsigmoid(labels * logits).sum(1).mean()


def siglip_per_example(zi, zt, t, b):
    logits = t * zi @ zt.T + b
    labels = 2 * torch.eye(len(zi), dtype=zi.dtype) - 1
    return -F.logsigmoid(labels * logits).sum(1)


def clip_per_example(zi, zt, t):
    logits = t * zi @ zt.T
    target = torch.arange(len(zi))
    rows = F.cross_entropy(logits, target, reduction="none")
    cols = F.cross_entropy(logits.T, target, reduction="none")
    return (rows + cols) / 2


def clip_loss(zi, zt, t):
    logits = t * zi @ zt.T
    target = torch.arange(len(zi))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _leaves(seed, dtype=torch.float32):
    zi, zt = random_pair(seed, N, D, dtype=dtype)
    t = torch.tensor(10.0, dtype=dtype)
    b = torch.tensor(-5.0, dtype=dtype)
    return [x.clone().requires_grad_() for x in (zi, zt, t, b)]


def _grads(loss, leaves):
    return torch.autograd.grad(loss, leaves)


def _loss_pair(loss):
    """(jester's loss, the PyTorch one, how many of (zi, zt, t, b) it takes)."""
    if loss == "sigmoid":
        return jester.sigmoid_loss, siglip_loss, 4
    return jester.softmax_loss, clip_loss, 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_loss_and_embedding_gradients_match_pytorch(loss, dtype):
    ours_fn, theirs_fn, arity = _loss_pair(loss)
    zi, zt, t, b = _leaves(0, dtype)
    scalars = (t.detach(), b.detach())[: arity - 2]
    value = ours_fn(zi, zt, *scalars)
    expected = theirs_fn(zi, zt, *scalars)
    assert value.dim() == 0 and value.dtype == dtype
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)
    for g, h in zip(_grads(value, [zi, zt]), _grads(expected, [zi, zt])):
        torch.testing.assert_close(g, h, rtol=1e-5, atol=1e-5)
    # Python numbers for t and b give the same.
    numbers = [x.item() for x in scalars]
    torch.testing.assert_close(ours_fn(zi, zt, *numbers), value, rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True")
@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_loss_gradients_reach_temperature_and_bias(loss):
    """A model's log-scale parameter and bias: gradients reach them through `t = exp(t')`."""
    ours_fn, theirs_fn, arity = _loss_pair(loss)
    zi, zt, _, _ = _leaves(2)
    log_t = torch.tensor(2.3, requires_grad=True)
    b = torch.tensor(-10.0, requires_grad=True)
    params = [log_t, b][: arity - 2]
    grads = _grads(ours_fn(zi, zt, log_t.exp(), *params[1:]), params)
    expected = _grads(theirs_fn(zi, zt, log_t.exp(), *params[1:]), params)
    for g, h in zip(grads, expected):
        torch.testing.assert_close(g, h, rtol=1e-5, atol=1e-5)


def _models(normalised):
    li, lt = random_pair(4, N, D, normalised=normalised)
    ri, rt = random_pair(5, N, D, normalised=normalised)
    return (li, lt, 10.0, -5.0), (ri, rt, 7.5, -2.25)


@pytest.mark.parametrize("normalised", [True, False], ids=["unit", "raw"])
def test_scores_are_learner_minus_reference_row_sums(normalised):
    (li, lt, lt_, lb), (ri, rt, rt_, rb) = _models(normalised)
    learner = jester.Embeddings(li, lt, lt_, lb)
    reference = jester.Embeddings(ri, rt, rt_, rb)
    ell = siglip_per_example(unit_rows(li), unit_rows(lt), lt_, lb)
    ref = siglip_per_example(unit_rows(ri), unit_rows(rt), rt_, rb)
    cases = {
        "learnability": ell - ref,
        "hard_learner": ell,
        "easy_reference": -ref,
        "uniform": torch.zeros(N),
    }
    for score, expected in cases.items():
        got = jester.scores(learner, reference, score=score)
        assert got.shape == (N,)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4, msg=score)
    # The hard-learner score needs no reference.
    torch.testing.assert_close(jester.scores(learner, None, score="hard-learner"), ell)


def test_softmax_scores_are_per_example_cross_entropies():
    (li, lt, lt_, lb), (ri, rt, rt_, rb) = _models(True)
    learner = jester.Embeddings(li, lt, lt_, lb)
    reference = jester.Embeddings(ri, rt, rt_, rb)
    expected = clip_per_example(li, lt, lt_) - clip_per_example(ri, rt, rt_)
    got = jester.scores(learner, reference, loss="softmax")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_scores_are_differentiable_in_the_learner():
    li, lt = random_pair(6, N, D)
    li.requires_grad_()
    ri, rt = random_pair(7, N, D)
    learner = jester.Embeddings(li, lt, 10.0, -5.0)
    reference = jester.Embeddings(ri, rt, 7.5, -2.25)
    weights = torch.linspace(-1, 1, N)
    (grad,) = torch.autograd.grad((jester.scores(learner, reference) * weights).sum(), [li])
    expected_scores = siglip_per_example(li, lt, 10.0, -5.0) - siglip_per_example(
        ri, rt, 7.5, -2.25
    )
    (expected,) = torch.autograd.grad((expected_scores * weights).sum(), [li])
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-5)


def plain_distill(zi, zt, t, b, ri, rt, rt_, rb, loss):
    """Distillation written with torch's own KL: ACED's softmax KD over both directions, and the
    per-pair binary KL of the sigmoid loss's probabilities (docs/ALGORITHM.md §9)."""
    learner, reference = t * zi @ zt.T, rt_ * ri @ rt.T
    if loss == "softmax":
        rows = F.kl_div(
            F.log_softmax(learner, 1), F.log_softmax(reference, 1), reduction="batchmean",
            log_target=True,
        )  # fmt: skip
        cols = F.kl_div(
            F.log_softmax(learner.T, 1), F.log_softmax(reference.T, 1), reduction="batchmean",
            log_target=True,
        )  # fmt: skip
        return (rows + cols) / 2
    p = torch.sigmoid(reference + rb)
    q = torch.sigmoid(learner + b)
    kl = p * (p.log() - q.log()) + (1 - p) * ((1 - p).log() - (1 - q).log())
    return kl.sum() / len(zi)


@pytest.mark.parametrize("width", [D, D + 5], ids=["same-width", "wider-reference"])
@pytest.mark.parametrize("loss", ["sigmoid", "softmax"])
def test_distill_loss_is_plain_pytorch_in_value_and_gradient(loss, width):
    """Also with a reference of another width (a wider teacher): each model's logits are its own."""
    zi, zt = random_pair(11, N, D, dtype=torch.float64)
    ri, rt = random_pair(12, N, width, dtype=torch.float64)
    reference = jester.Embeddings(ri, rt, 8.0, -4.0)
    inputs = [x.clone().requires_grad_(True) for x in (zi, zt)]
    t = torch.tensor(6.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    ours = jester.distill_loss(*inputs, t, b, reference, loss=loss)
    ours.backward()

    def grads(xs):
        # A softmax ignores the bias: no gradient reaches it (None), which counts as zero.
        return [torch.zeros_like(x) if x.grad is None else x.grad.clone() for x in xs]

    mine = grads([*inputs, t, b])
    plain = [x.detach().clone().requires_grad_(True) for x in (zi, zt, t, b)]
    expected = plain_distill(*plain, ri, rt, 8.0, -4.0, loss)
    expected.backward()
    torch.testing.assert_close(ours.detach(), expected.detach(), rtol=1e-5, atol=1e-8)
    for got, want in zip(mine, grads(plain)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)
    # A learner equal to its reference has nothing to learn.
    if width != D:
        return
    same = jester.distill_loss(ri, rt, torch.tensor(8.0), torch.tensor(-4.0), reference, loss=loss)
    assert abs(float(same)) < 1e-6


def test_distill_loss_refuses_a_reference_of_other_rows():
    zi, zt = random_pair(11, N, D)
    ri, rt = random_pair(12, N - 1, D)
    with pytest.raises(ValueError, match=r"^reference: "):
        jester.distill_loss(zi, zt, 6.0, -3.0, jester.Embeddings(ri, rt, 8.0, -4.0))
    with pytest.raises(ValueError, match=r"^loss"):
        jester.distill_loss(zi, zt, 6.0, -3.0, jester.Embeddings(zi, zt, 8.0, -4.0), loss="l2")
