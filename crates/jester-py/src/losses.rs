//! `jester.sigmoid_loss`, `jester.softmax_loss`, `jester.scores`: the library's losses on the
//! caller's tensors, differentiable.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use tch::Tensor;

use jester::loss::{distill_loss as distill_loss_fn, LossKind};
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

/// Distillation of a learner's pairwise logits towards a reference's on the same batch (ACED;
/// the repo's docs/ALGORITHM.md §9): `loss="sigmoid"` a binary KL per pair (with each model's t and
/// b), `"softmax"` the KL of both directions' softmaxes (each model's t; biases unused).
/// Differentiable in the learner's image, text, t and b; the reference is a constant.
#[pyfunction]
#[pyo3(signature = (image, text, t, b, reference, *, loss = "sigmoid"))]
pub(crate) fn distill_loss(
    image: PyTensor,
    text: PyTensor,
    t: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    reference: &Embeddings,
    loss: &str,
) -> PyResult<PyTensor> {
    pair(&image, &text)?;
    let loss: LossKind = parse("loss", loss)?;
    let (t, b) = (scalar("t", t, &image)?, scalar("b", b, &image)?);
    let r = reference.get();
    // Each model's logits are its own b × b: the reference may be of another width (a wider
    // teacher), but row i must be the same example, on the same device.
    if r.image().size()[0] != image.size()[0] || r.device() != image.device() {
        return Err(PyValueError::new_err(format!(
            "reference: {:?} on {:?}; expected {} rows (the learner's {:?}) on {:?} (row i the \
             same example; the width may differ)",
            r.image().size(),
            r.device(),
            image.size()[0],
            image.size(),
            image.device()
        )));
    }
    let (ri, rt) = (
        r.image().to_kind(image.kind()),
        r.text().to_kind(image.kind()),
    );
    Ok(PyTensor(distill_loss_fn(
        loss,
        &image,
        &text,
        &t,
        &b,
        &ri,
        &rt,
        r.temperature(),
        r.bias(),
    )))
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
