//! Argument checks and conversions shared by the bindings: every refusal is a `TypeError` or a
//! `ValueError` that names the argument.
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use tch::{Device, Kind, Tensor};

pub(crate) fn library_error(e: jester::Error) -> PyErr {
    match e {
        jester::Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// The tensor's device, or a `ValueError` for one jester does not run on (meta, MPS, …).
pub(crate) fn device_of(name: &str, x: &Tensor) -> PyResult<Device> {
    let x = std::panic::AssertUnwindSafe(x);
    match std::panic::catch_unwind(|| x.device()) {
        Ok(device @ (Device::Cpu | Device::Cuda(_))) => Ok(device),
        _ => Err(PyValueError::new_err(format!(
            "{name}: jester runs on CPU and CUDA tensors; move it with .to(\"cpu\") or .to(\"cuda\")"
        ))),
    }
}

/// A tensor argument checked to be a floating-point matrix `[B, D]` on the CPU or a GPU.
pub(crate) fn float_matrix(name: &str, x: &Tensor) -> PyResult<()> {
    device_of(name, x)?;
    if !matches!(
        x.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    ) {
        return Err(PyTypeError::new_err(format!(
            "{name}: dtype {:?} is not a floating-point type; pass float32, float64, float16 or \
             bfloat16 embeddings",
            x.kind()
        )));
    }
    if x.dim() != 2 || x.size().contains(&0) {
        return Err(PyValueError::new_err(format!(
            "{name}: shape {:?}; expected a non-empty [B, D] matrix",
            x.size()
        )));
    }
    Ok(())
}

pub(crate) fn positive_finite(name: &str, value: f64) -> PyResult<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(PyValueError::new_err(format!(
            "{name} = {value}: must be finite and > 0"
        )));
    }
    Ok(())
}

/// A float that must be finite and ≥ 0 (the selection gain: 0 is uniform sampling without
/// replacement, as in the CLI and configs).
pub(crate) fn non_negative_finite(name: &str, value: f64) -> PyResult<()> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "{name} = {value}: must be finite and ≥ 0 (0 samples uniformly without replacement)"
        )));
    }
    Ok(())
}

/// A Python int that must not be negative (a negative one is a `ValueError` naming it, not an
/// overflow).
pub(crate) fn non_negative(name: &str, value: i64) -> PyResult<usize> {
    usize::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{name} = {value}: must not be negative")))
}

pub(crate) fn parse<T: std::str::FromStr<Err = String>>(name: &str, value: &str) -> PyResult<T> {
    value
        .replace('_', "-")
        .parse()
        .map_err(|e: String| PyValueError::new_err(format!("{name}: {e}")))
}

/// `t` or `b` as a 0-dim tensor on `like`'s device: a Python number, or a tensor (kept, so that
/// gradients reach it).
pub(crate) fn scalar(name: &str, value: &Bound<'_, PyAny>, like: &Tensor) -> PyResult<Tensor> {
    // A tensor first: a 0-dim tensor also converts to a float, which would cut it from autograd.
    let Ok(x) = value.extract::<PyTensor>() else {
        let x = value.extract::<f64>().map_err(|_| {
            PyTypeError::new_err(format!("{name}: expected a float or a 0-dim tensor"))
        })?;
        return Ok(Tensor::from(x)
            .to_kind(like.kind())
            .to_device(like.device()));
    };
    if x.numel() != 1 {
        return Err(PyValueError::new_err(format!(
            "{name}: shape {:?}; expected one value",
            x.size()
        )));
    }
    Ok(x.0.reshape([0i64; 0]))
}

pub(crate) fn pair(image: &Tensor, text: &Tensor) -> PyResult<()> {
    float_matrix("image", image)?;
    float_matrix("text", text)?;
    if image.size() != text.size() || image.device() != text.device() {
        return Err(PyValueError::new_err(format!(
            "image {:?} on {:?} and text {:?} on {:?}: expected the same [n, D] on one device",
            image.size(),
            image.device(),
            text.size(),
            text.device()
        )));
    }
    Ok(())
}

pub(crate) fn parse_device(device: &str) -> PyResult<Device> {
    jester::parse_device(device).map_err(|why| PyValueError::new_err(format!("device = {why}")))
}
