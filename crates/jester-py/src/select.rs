//! `jester.select`: the library's (grouped) selection with the GIL released.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_tch::PyTensor;

use jester::loss::LossKind;
use jester::select::{
    batch_score, select_grouped, uniform_batch_score, Method, ScoreKind, SelectConfig,
};

use crate::checks::{library_error, non_negative, non_negative_finite, parse};
use crate::embeddings::Embeddings;

/// Any u64 seed, as `jester train`'s per-step seeds are; anything else is a `ValueError` naming it.
fn seed_u64(seed: &Bound<'_, PyAny>) -> PyResult<u64> {
    seed.extract().map_err(|_| {
        PyValueError::new_err(format!("seed = {seed}: must be an integer in [0, 2**64)"))
    })
}

/// Selects `batch_size` of the B examples (see the package docs). Returns (indices on the
/// embeddings' device, in selection order; summary dict).
#[pyfunction]
#[pyo3(signature = (learner, reference, batch_size, *, method = "joint", score = "learnability",
                    loss = "sigmoid", chunks = 16, gain = 100.0, seed = 0, summary = false,
                    groups = 1))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn select<'py>(
    py: Python<'py>,
    learner: &Embeddings,
    reference: Option<&Embeddings>,
    batch_size: i64,
    method: &str,
    score: &str,
    loss: &str,
    chunks: i64,
    gain: f64,
    #[pyo3(from_py_with = seed_u64)] seed: u64,
    summary: bool,
    groups: i64,
) -> PyResult<(PyTensor, Bound<'py, PyDict>)> {
    let batch_size = non_negative("batch_size", batch_size)?;
    let chunks = non_negative("chunks", chunks)?;
    let groups = non_negative("groups", groups)?;
    let method: Method = parse("method", method)?;
    let score: ScoreKind = parse("score", score)?;
    let loss: LossKind = parse("loss", loss)?;
    non_negative_finite("gain", gain)?;
    let learner = learner.get();
    let reference = reference.map(Embeddings::get);
    let big = learner.len();
    if batch_size == 0 || batch_size > big {
        return Err(PyValueError::new_err(format!(
            "batch_size = {batch_size}: must be in 1..={big} (the super-batch's B)"
        )));
    }
    if groups == 0 || !big.is_multiple_of(groups) || !batch_size.is_multiple_of(groups) {
        return Err(PyValueError::new_err(format!(
            "groups = {groups}: must divide B = {big} and batch_size = {batch_size}"
        )));
    }
    if method == Method::Joint && (chunks == 0 || chunks > batch_size / groups) {
        return Err(PyValueError::new_err(format!(
            "chunks = {chunks}: must be in 1..={} (batch_size / groups)",
            batch_size / groups
        )));
    }
    match &reference {
        None if method != Method::Uniform && score.needs_reference() => {
            return Err(PyValueError::new_err(format!(
                "reference: the {} score needs the reference's embeddings",
                score.name()
            )))
        }
        Some(r) if r.len() != big => {
            return Err(PyValueError::new_err(format!(
                "reference: {} examples, the learner {big}; both must embed the same super-batch",
                r.len()
            )))
        }
        Some(r) if r.device() != learner.device() => {
            return Err(PyValueError::new_err(format!(
                "reference is on {:?} and learner on {:?}; put both on one device",
                r.device(),
                learner.device()
            )))
        }
        _ => {}
    }
    let config = SelectConfig {
        method,
        score,
        loss,
        chunks,
        gain,
        seed,
    };
    let device = learner.device();
    let (selection, scores) = py
        .allow_threads(move || -> jester::Result<_> {
            let reference = reference.as_ref().filter(|_| score.needs_reference());
            let scorable = reference.is_some() || !score.needs_reference();
            let selection = select_grouped(&learner, reference, batch_size, &config, groups)?;
            let scores = if summary && score != ScoreKind::Uniform && scorable {
                let index = selection.index_tensor(device);
                let block = 1024;
                Some((
                    batch_score(score, loss, &learner, reference, &index, block)?,
                    uniform_batch_score(score, loss, &learner, reference, batch_size, block)?,
                ))
            } else {
                None
            };
            Ok((selection, scores))
        })
        .map_err(library_error)?;
    let out = PyDict::new(py);
    let sizes: Vec<usize> = selection.chunks.iter().map(|c| c.len()).collect();
    out.set_item("chunk_sizes", sizes)?;
    out.set_item("score", score.name().replace('-', "_"))?;
    if let Some((selected, uniform)) = scores {
        out.set_item("selected", selected)?;
        out.set_item("uniform", uniform)?;
    }
    Ok((PyTensor(selection.index_tensor(device)), out))
}
