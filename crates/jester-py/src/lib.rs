//! `jester._jester`: the Python extension behind the `jester` package (docs/PYTHON.md). PyTorch
//! tensors cross as the same `at::Tensor` (no copy, any device); the work runs in the `jester`
//! library with the GIL released. Argument checks raise `TypeError`/`ValueError` naming the
//! argument; the Python layer (`python/jester/__init__.py`) adds nothing but documentation.
use pyo3::prelude::*;

mod cache;
mod checks;
mod cli;
mod embeddings;
mod losses;
mod select;

#[pymodule]
fn _jester(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<embeddings::Embeddings>()?;
    m.add_class::<cache::ReferenceCacheWriter>()?;
    m.add_class::<cache::ReferenceCache>()?;
    m.add_function(wrap_pyfunction!(select::select, m)?)?;
    m.add_function(wrap_pyfunction!(cli::cli, m)?)?;
    m.add_function(wrap_pyfunction!(losses::sigmoid_loss, m)?)?;
    m.add_function(wrap_pyfunction!(losses::softmax_loss, m)?)?;
    m.add_function(wrap_pyfunction!(losses::distill_loss, m)?)?;
    m.add_function(wrap_pyfunction!(losses::scores, m)?)?;
    Ok(())
}
