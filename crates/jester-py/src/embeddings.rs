//! `jester.Embeddings`: one model's embeddings of a super-batch, held without a copy.
use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_tch::PyTensor;

use jester::PairEmbeddings;

use crate::checks::{float_matrix, library_error, positive_finite};

/// One model's embeddings of a super-batch: image and text `[B, D]`, the sigmoid loss's
/// temperature `t` (the temperature itself, not its log) and bias `b`.
#[pyclass(module = "jester", name = "Embeddings", frozen)]
pub(crate) struct Embeddings {
    pub(crate) inner: Mutex<PairEmbeddings>,
}

impl Embeddings {
    pub(crate) fn get(&self) -> PairEmbeddings {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shallow_clone()
    }
}

#[pymethods]
impl Embeddings {
    #[new]
    #[pyo3(signature = (image, text, t, b))]
    fn new(image: PyTensor, text: PyTensor, t: f64, b: f64) -> PyResult<Self> {
        float_matrix("image", &image)?;
        float_matrix("text", &text)?;
        if image.size() != text.size() {
            return Err(PyValueError::new_err(format!(
                "image {:?} and text {:?}: both towers must give the same [B, D]",
                image.size(),
                text.size()
            )));
        }
        if image.device() != text.device() {
            return Err(PyValueError::new_err(format!(
                "image is on {:?} and text on {:?}; put both on one device",
                image.device(),
                text.device()
            )));
        }
        positive_finite("t", t)?;
        if !b.is_finite() {
            return Err(PyValueError::new_err(format!("b = {b}: must be finite")));
        }
        let inner = PairEmbeddings::wrap(image.0, text.0, t, b).map_err(library_error)?;
        Ok(Self {
            inner: Mutex::new(inner),
        })
    }

    /// `[B, D]`, rows of unit norm (the input itself when it was already normalised).
    #[getter]
    fn image(&self) -> PyTensor {
        PyTensor(self.get().image().shallow_clone())
    }
    #[getter]
    fn text(&self) -> PyTensor {
        PyTensor(self.get().text().shallow_clone())
    }
    #[getter]
    fn t(&self) -> f64 {
        self.get().temperature()
    }
    #[getter]
    fn b(&self) -> f64 {
        self.get().bias()
    }
    #[getter]
    fn dim(&self) -> usize {
        self.get().dim()
    }
    fn __len__(&self) -> usize {
        self.get().len()
    }
    fn __repr__(&self) -> String {
        let e = self.get();
        format!(
            "Embeddings(B={}, D={}, t={}, b={}, dtype={:?}, device={:?})",
            e.len(),
            e.dim(),
            e.temperature(),
            e.bias(),
            e.kind(),
            e.device()
        )
    }
}
