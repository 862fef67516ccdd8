//! `jester.sigmoid_loss`, `jester.softmax_loss`, `jester.scores`: the library's losses on the
//! caller's tensors, differentiable.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use tch::Tensor;

use jester::loss::LossKind;
use jester::loss::{
    sigmoid_batch_loss, sigmoid_per_example, softmax_batch_loss, softmax_per_example,
};
use jester::select::ScoreKind;
use jester::PairEmbeddings;

use crate::checks::{pair, parse, scalar};
use crate::embeddings::Embeddings;

/// The SigLIP batch loss of paired (normalised) embeddings: mean over images of the summed
/// pairwise sigmoid NLL. Differentiable (autograd flows to image, text, t and b).
#[pyfunction]
pub(crate) fn sigmoid_loss(
    image: PyTensor,
    text: PyTensor,
    t: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    pair(&image, &text)?;
    let (t, b) = (scalar("t", t, &image)?, scalar("b", b, &image)?);
    Ok(PyTensor(sigmoid_batch_loss(&image, &text, &t, &b)))
}

/// The CLIP (softmax) batch loss: the mean of the image→text and text→image cross-entropies.
#[pyfunction]
pub(crate) fn softmax_loss(
    image: PyTensor,
    text: PyTensor,
    t: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    pair(&image, &text)?;
    let t = scalar("t", t, &image)?;
    Ok(PyTensor(softmax_batch_loss(&image, &text, &t)))
}

/// Per-example scores `[B]` of a super-batch: S = w_L·ℓ_learner + w_R·ℓ_reference with each ℓ the
/// example's loss within the whole batch (learnability: w = (1, −1)). Differentiable.
#[pyfunction]
#[pyo3(signature = (learner, reference, *, score = "learnability", loss = "sigmoid"))]
pub(crate) fn scores(
    learner: &Embeddings,
    reference: Option<&Embeddings>,
    score: &str,
    loss: &str,
) -> PyResult<PyTensor> {
    let score: ScoreKind = parse("score", score)?;
    let loss: LossKind = parse("loss", loss)?;
    let per_example = |e: &PairEmbeddings| {
        let t = Tensor::from(e.temperature())
            .to_kind(e.kind())
            .to_device(e.device());
        match loss {
            LossKind::Sigmoid => {
                let b = Tensor::from(e.bias())
                    .to_kind(e.kind())
                    .to_device(e.device());
                sigmoid_per_example(e.image(), e.text(), &t, &b)
            }
            LossKind::Softmax => softmax_per_example(e.image(), e.text(), &t),
        }
    };
    let learner = learner.get();
    let (w_learner, w_reference) = score.weights();
    let mut total = per_example(&learner) * w_learner;
    if w_reference != 0.0 {
        let reference = reference.map(Embeddings::get).ok_or_else(|| {
            PyValueError::new_err(format!(
                "reference: the {} score needs the reference's embeddings",
                score.name()
            ))
        })?;
        if reference.len() != learner.len() || reference.device() != learner.device() {
            return Err(PyValueError::new_err(
                "reference: must hold the learner's B examples, on its device",
            ));
        }
        total += per_example(&reference).to_kind(total.kind()) * w_reference;
    }
    Ok(PyTensor(total))
}
