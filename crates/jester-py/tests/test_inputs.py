"""Inputs of the package: normalised tensors cross into `jester.Embeddings` without a copy (same
storage; RSS grows by far less than the input, even for ~1 GB), select leaves its inputs as they
were, dtypes are handled as documented, and every bad argument raises `ValueError` or
`TypeError` naming it, never a crash or a panic."""

from __future__ import annotations

import math

import pytest
import torch

import jester
from conftest import (
    no_panic,
    proc_status_bytes,
    random_pair,
    require_cuda,
    reset_peak_rss,
    unit_rows,
)

B, D = 40, 8


def test_normalised_input_is_not_copied():
    zi, zt = random_pair(0, B, D)
    e = jester.Embeddings(zi, zt, 10.0, -5.0)
    assert e.image.data_ptr() == zi.data_ptr()
    assert e.text.data_ptr() == zt.data_ptr()
    assert (len(e), e.dim, e.t, e.b) == (B, D, 10.0, -5.0)
    assert repr(e).startswith(f"Embeddings(B={B}, D={D}")


def test_float64_normalised_input_is_not_copied():
    zi, zt = random_pair(0, B, D, dtype=torch.float64)
    e = jester.Embeddings(zi, zt, 1.0, 0.0)
    assert e.image.dtype == torch.float64
    assert e.image.data_ptr() == zi.data_ptr()


def test_raw_input_is_normalised_into_a_new_tensor():
    zi, zt = random_pair(0, B, D, normalised=False)
    before = (zi.clone(), zt.clone())
    e = jester.Embeddings(zi, zt, 1.0, 0.0)
    assert e.image.data_ptr() != zi.data_ptr()
    torch.testing.assert_close(e.image, unit_rows(zi))
    torch.testing.assert_close(e.text, unit_rows(zt))
    assert torch.equal(zi, before[0]) and torch.equal(zt, before[1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_widened_to_float32(dtype):
    zi, zt = random_pair(0, B, D)
    e = jester.Embeddings(zi.to(dtype), zt.to(dtype), 1.0, 0.0)
    assert e.image.dtype == torch.float32 and e.text.dtype == torch.float32
    torch.testing.assert_close(e.image, unit_rows(zi.to(dtype).float()))


def test_select_leaves_its_inputs_unchanged():
    li, lt = random_pair(1, 200, D)
    ri, rt = random_pair(2, 200, D, normalised=False)
    kept = [x.clone() for x in (li, lt, ri, rt)]
    learner, reference = jester.Embeddings(li, lt, 10.0, -5.0), jester.Embeddings(ri, rt, 5.0, 0.0)
    for loss in ("sigmoid", "softmax"):
        jester.select(learner, reference, 50, chunks=5, loss=loss)
        jester.scores(learner, reference, loss=loss)
    for x, y in zip((li, lt, ri, rt), kept):
        assert torch.equal(x, y)
    assert learner.image.data_ptr() == li.data_ptr()


def test_embeddings_of_a_gigabyte_take_no_copy():
    """~1 GB of normalised f32 (image and text [1M, 128] each): wrapping them (which checks every
    value for NaN/Inf and every row's norm) grows the peak RSS by far less than the input."""
    n, d = 1_000_000, 128
    image = torch.full((n, d), d**-0.5)  # rows of unit norm, every page written
    text = torch.full((n, d), -(d**-0.5))
    size = 2 * n * d * 4
    rss_before = proc_status_bytes("VmRSS")
    peak_reset = reset_peak_rss()
    e = jester.Embeddings(image, text, 10.0, -5.0)
    grown = (proc_status_bytes("VmHWM") if peak_reset else proc_status_bytes("VmRSS")) - rss_before
    assert e.image.data_ptr() == image.data_ptr() and e.text.data_ptr() == text.data_ptr()
    assert grown < 0.25 * size, f"RSS grew by {grown / 2**20:.0f} MiB for {size / 2**20:.0f} MiB"
    del e, image, text


# --- bad arguments --------------------------------------------------------------------------

_zi, _zt = random_pair(3, B, D)
_L = jester.Embeddings(_zi, _zt, 10.0, -5.0)
_R = jester.Embeddings(*random_pair(4, B, D), 5.0, -1.0)


def _with(x: torch.Tensor, row: int, value: float) -> torch.Tensor:
    x = x.clone()
    x[row, 1] = value
    return x


def _embeddings(image=_zi, text=_zt, t=10.0, b=-5.0):
    return lambda: jester.Embeddings(image, text, t, b)


def _select(learner=_L, reference=_R, batch_size=10, **kwargs):
    kwargs.setdefault("chunks", 2)
    return lambda: jester.select(learner, reference, batch_size, **kwargs)


# (id, call, exception, regex the message must match: it names the argument)
BAD = [
    ("image-rank-1", _embeddings(image=_zi[:, 0]), ValueError, r"^image: shape \[40\]"),
    ("image-rank-3", _embeddings(image=_zi[None]), ValueError, r"^image: shape \[1, 40, 8\]"),
    ("text-rank-1", _embeddings(text=_zt[0]), ValueError, r"^text: shape"),
    ("image-empty", _embeddings(image=_zi[:0], text=_zt[:0]), ValueError, r"^image: shape \[0"),
    ("B-mismatch", _embeddings(text=_zt[:-1]), ValueError, r"image \[40, 8\] and text \[39, 8\]"),
    ("D-mismatch", _embeddings(text=_zt[:, :-1]), ValueError, r"image \[40, 8\] and text \[40, 7"),
    ("image-int64", _embeddings(image=torch.ones(B, D, dtype=torch.int64)), TypeError, r"^image"),
    ("text-int32", _embeddings(text=torch.ones(B, D, dtype=torch.int32)), TypeError, r"^text"),
    ("image-bool", _embeddings(image=torch.ones(B, D, dtype=torch.bool)), TypeError, r"^image"),
    ("image-list", _embeddings(image=[[1.0] * D] * B), TypeError, r"'image'"),
    ("image-nan", _embeddings(image=_with(_zi, 3, math.nan)), ValueError, r"image row 3 .*NaN"),
    ("text-inf", _embeddings(text=_with(_zt, 5, math.inf)), ValueError, r"text row 5 .*Inf"),
    ("image-neg-inf", _embeddings(image=_with(_zi, 0, -math.inf)), ValueError, r"image row 0"),
    ("image-zero-row", _embeddings(image=_zi * (torch.arange(B) != 7)[:, None]), ValueError,
     r"image row 7 .*zero"),
    ("t-zero", _embeddings(t=0.0), ValueError, r"^t = 0"),
    ("t-negative", _embeddings(t=-1.0), ValueError, r"^t = -1"),
    ("t-nan", _embeddings(t=math.nan), ValueError, r"^t = NaN"),
    ("t-inf", _embeddings(t=math.inf), ValueError, r"^t = inf"),
    ("t-str", _embeddings(t="1"), TypeError, r"'t'"),
    ("b-nan", _embeddings(b=math.nan), ValueError, r"^b = NaN"),
    ("b-inf", _embeddings(b=-math.inf), ValueError, r"^b = -inf"),
    ("batch-size-over-B", _select(batch_size=B + 1), ValueError, r"^batch_size = 41"),
    ("batch-size-zero", _select(batch_size=0), ValueError, r"^batch_size = 0"),
    ("batch-size-float", _select(batch_size=2.5), TypeError, r"'batch_size'"),
    ("chunks-over-batch-size", _select(chunks=11), ValueError, r"^chunks = 11"),
    ("chunks-zero", _select(chunks=0), ValueError, r"^chunks = 0"),
    ("gain-negative", _select(gain=-2.0), ValueError, r"^gain = -2"),
    ("gain-nan", _select(gain=math.nan), ValueError, r"^gain = NaN"),
    ("gain-inf", _select(gain=math.inf), ValueError, r"^gain = inf"),
    ("method-unknown", _select(method="greedy"), ValueError, r"^method: unknown method \"greedy\""),
    ("score-unknown", _select(score="hardest"), ValueError, r"^score: unknown score \"hardest\""),
    ("loss-unknown", _select(loss="hinge"), ValueError, r"^loss: unknown loss \"hinge\""),
    ("groups-zero", _select(groups=0), ValueError, r"^groups = 0"),
    ("groups-not-dividing", _select(groups=3), ValueError, r"^groups = 3"),
    ("learner-tensor", _select(learner=_zi), TypeError, r"'learner'"),
    ("reference-tensor", _select(reference=_zi), TypeError, r"'reference'"),
    ("reference-missing", _select(reference=None), ValueError, r"^reference: the learnability"),
    ("reference-missing-easy", _select(reference=None, score="easy_reference"), ValueError,
     r"^reference: the easy-reference"),
    ("reference-B-mismatch", _select(reference=jester.Embeddings(_zi[:-1], _zt[:-1], 1.0, 0.0)),
     ValueError, r"^reference: 39 examples, the learner 40"),
    ("reference-dtype-mismatch", _select(reference=jester.Embeddings(_zi.double(), _zt.double(),
     1.0, 0.0)), ValueError, r"learner is .*Float but reference is .*Double"),
    ("sigmoid-loss-image-int", lambda: jester.sigmoid_loss(_zi.long(), _zt, 1.0, 0.0), TypeError,
     r"^image"),
    ("sigmoid-loss-shapes", lambda: jester.sigmoid_loss(_zi, _zt[:5], 1.0, 0.0), ValueError,
     r"^image \[40, 8\] .* text \[5, 8\]"),
    ("sigmoid-loss-t-str", lambda: jester.sigmoid_loss(_zi, _zt, "x", 0.0), TypeError, r"^t:"),
    ("sigmoid-loss-t-vector", lambda: jester.sigmoid_loss(_zi, _zt, torch.ones(2), 0.0),
     ValueError, r"^t: shape \[2\]"),
    ("sigmoid-loss-b-vector", lambda: jester.sigmoid_loss(_zi, _zt, 1.0, torch.ones(3)),
     ValueError, r"^b: shape \[3\]"),
    ("softmax-loss-text-rank", lambda: jester.softmax_loss(_zi, _zt[0], 1.0), ValueError,
     r"^text: shape"),
    ("scores-reference-missing", lambda: jester.scores(_L, None), ValueError, r"^reference"),
    ("scores-reference-B", lambda: jester.scores(_L, jester.Embeddings(_zi[:5], _zt[:5], 1.0, 0.0)),
     ValueError, r"^reference"),
    ("scores-score-unknown", lambda: jester.scores(_L, _R, score="x"), ValueError, r"^score:"),
    ("scores-loss-unknown", lambda: jester.scores(_L, _R, loss="x"), ValueError, r"^loss:"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_argument_raises_naming_it(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_independent_selection_ignores_chunks():
    indices, summary = jester.select(_L, _R, 10, method="independent", chunks=0)
    assert len(indices) == 10 and summary["chunk_sizes"] == [10]


@pytest.mark.parametrize("kwargs", [{"batch_size": -1}, {"chunks": -1}, {"seed": -1}])
def test_negative_integer_argument_raises_value_error_naming_it(kwargs):
    args = {"batch_size": 10, **kwargs}
    name = next(iter(kwargs))
    with pytest.raises((ValueError, TypeError), match=name):
        jester.select(_L, _R, args.pop("batch_size"), **args)


def test_meta_tensors_raise_instead_of_panicking():
    meta = torch.empty(B, D, device="meta")
    no_panic(lambda: jester.Embeddings(meta, meta, 1.0, 0.0))


def test_mixed_devices_raise_naming_them():
    require_cuda("image and text on different devices")
    cuda_image = _zi.cuda()
    with pytest.raises(ValueError, match=r"image is on .* and text on"):
        jester.Embeddings(cuda_image, _zt, 1.0, 0.0)
    learner_cuda = jester.Embeddings(cuda_image, _zt.cuda(), 1.0, 0.0)
    with pytest.raises(ValueError, match=r"reference is on .* and learner on"):
        jester.select(learner_cuda, _R, 10)
    with pytest.raises(ValueError, match=r"image .* and text .*one device"):
        jester.sigmoid_loss(cuda_image, _zt, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"^reference"):
        jester.scores(learner_cuda, _R)


def test_cuda_input_selects_on_its_device():
    require_cuda("selection on CUDA tensors")
    image, text = _zi.cuda(), _zt.cuda()
    learner = jester.Embeddings(image, text, 10.0, -5.0)
    assert learner.image.data_ptr() == image.data_ptr()
    reference = jester.Embeddings(_R.image.cuda(), _R.text.cuda(), 5.0, -1.0)
    indices, _ = jester.select(learner, reference, 10, chunks=2)
    assert indices.device.type == "cuda"
    assert len(set(indices.tolist())) == 10
