//! `jester._jester`: the Python extension behind the `jester` package (docs/PYTHON.md). PyTorch
//! tensors cross as the same `at::Tensor` (no copy, any device); the work runs in the `jester`
//! library with the GIL released. Argument checks raise `TypeError`/`ValueError` naming the
//! argument; the Python layer (`python/jester/__init__.py`) adds nothing but documentation.
use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_tch::PyTensor;
use tch::{Device, Kind, Tensor};

use jester::cache::{EmbeddingCache, EmbeddingWriter};
use jester::loss::LossKind;
use jester::loss::{
    sigmoid_batch_loss, sigmoid_per_example, softmax_batch_loss, softmax_per_example,
};
use jester::provenance::{file_hash, Provenance, ShardFingerprint};
use jester::select::{
    batch_score, select_grouped, uniform_batch_score, Method, ScoreKind, SelectConfig,
};
use jester::PairEmbeddings;

fn library_error(e: jester::Error) -> PyErr {
    match e {
        jester::Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// The tensor's device, or a `ValueError` for one jester does not run on (meta, MPS, …).
fn device_of(name: &str, x: &Tensor) -> PyResult<Device> {
    let x = std::panic::AssertUnwindSafe(x);
    match std::panic::catch_unwind(|| x.device()) {
        Ok(device @ (Device::Cpu | Device::Cuda(_))) => Ok(device),
        _ => Err(PyValueError::new_err(format!(
            "{name}: jester runs on CPU and CUDA tensors; move it with .to(\"cpu\") or .to(\"cuda\")"
        ))),
    }
}

/// A tensor argument checked to be a floating-point matrix `[B, D]` on the CPU or a GPU.
fn float_matrix(name: &str, x: &Tensor) -> PyResult<()> {
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

fn positive_finite(name: &str, value: f64) -> PyResult<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(PyValueError::new_err(format!(
            "{name} = {value}: must be finite and > 0"
        )));
    }
    Ok(())
}

/// One model's embeddings of a super-batch: image and text `[B, D]`, the sigmoid loss's
/// temperature `t` (the temperature itself, not its log) and bias `b`.
#[pyclass(module = "jester", name = "Embeddings", frozen)]
struct Embeddings {
    inner: Mutex<PairEmbeddings>,
}

impl Embeddings {
    fn get(&self) -> PairEmbeddings {
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

/// A Python int that must not be negative (a negative one is a `ValueError` naming it, not an
/// overflow).
fn non_negative(name: &str, value: i64) -> PyResult<usize> {
    usize::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{name} = {value}: must not be negative")))
}

fn parse<T: std::str::FromStr<Err = String>>(name: &str, value: &str) -> PyResult<T> {
    value
        .replace('_', "-")
        .parse()
        .map_err(|e: String| PyValueError::new_err(format!("{name}: {e}")))
}

/// Selects `batch_size` of the B examples (see the package docs). Returns (indices on the
/// embeddings' device, in selection order; summary dict).
#[pyfunction]
#[pyo3(signature = (learner, reference, batch_size, *, method = "joint", score = "learnability",
                    loss = "sigmoid", chunks = 16, gain = 100.0, seed = 0, summary = false,
                    groups = 1))]
#[allow(clippy::too_many_arguments)]
fn select<'py>(
    py: Python<'py>,
    learner: &Embeddings,
    reference: Option<&Embeddings>,
    batch_size: i64,
    method: &str,
    score: &str,
    loss: &str,
    chunks: i64,
    gain: f64,
    seed: i64,
    summary: bool,
    groups: i64,
) -> PyResult<(PyTensor, Bound<'py, PyDict>)> {
    let batch_size = non_negative("batch_size", batch_size)?;
    let chunks = non_negative("chunks", chunks)?;
    let seed = non_negative("seed", seed)? as u64;
    let groups = non_negative("groups", groups)?;
    let method: Method = parse("method", method)?;
    let score: ScoreKind = parse("score", score)?;
    let loss: LossKind = parse("loss", loss)?;
    positive_finite("gain", gain)?;
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

/// `t` or `b` as a 0-dim tensor on `like`'s device: a Python number, or a tensor (kept, so that
/// gradients reach it).
fn scalar(name: &str, value: &Bound<'_, PyAny>, like: &Tensor) -> PyResult<Tensor> {
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

fn pair(image: &Tensor, text: &Tensor) -> PyResult<()> {
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

/// The SigLIP batch loss of paired (normalised) embeddings: mean over images of the summed
/// pairwise sigmoid NLL. Differentiable (autograd flows to image, text, t and b).
#[pyfunction]
fn sigmoid_loss(
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
fn softmax_loss(image: PyTensor, text: PyTensor, t: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    pair(&image, &text)?;
    let t = scalar("t", t, &image)?;
    Ok(PyTensor(softmax_batch_loss(&image, &text, &t)))
}

/// Per-example scores `[B]` of a super-batch: S = w_L·ℓ_learner + w_R·ℓ_reference with each ℓ the
/// example's loss within the whole batch (learnability: w = (1, −1)). Differentiable.
#[pyfunction]
#[pyo3(signature = (learner, reference, *, score = "learnability", loss = "sigmoid"))]
fn scores(
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

/// Writes a reference cache (`jester train --reference`'s format) in pieces.
#[pyclass(module = "jester", name = "ReferenceCacheWriter")]
struct ReferenceCacheWriter {
    writer: Mutex<Option<EmbeddingWriter>>,
}

#[pymethods]
impl ReferenceCacheWriter {
    #[new]
    fn new(path: PathBuf) -> PyResult<Self> {
        let writer = EmbeddingWriter::create(&path).map_err(library_error)?;
        Ok(Self {
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Appends rows: one key per row of `image` and `text` `[n, D]` (any float dtype and device).
    fn append(&self, keys: Vec<String>, image: PyTensor, text: PyTensor) -> PyResult<()> {
        pair(&image, &text)?;
        if keys.len() as i64 != image.size()[0] {
            return Err(PyValueError::new_err(format!(
                "keys: {} keys for {} rows",
                keys.len(),
                image.size()[0]
            )));
        }
        for (name, x) in [("image", &image), ("text", &text)] {
            if x.isfinite().all().int64_value(&[]) != 1 {
                return Err(PyValueError::new_err(format!(
                    "{name}: holds NaN or Inf; a reference cache must hold finite embeddings"
                )));
            }
        }
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let writer = guard
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("the cache is already finished"))?;
        writer.append(&keys, &image, &text).map_err(library_error)
    }

    /// Finishes the file (atomically). `shards` are the shard files the keys come from (training
    /// checks them); `model` and `tokenizer` identify what computed the embeddings: a file is
    /// hashed, any other string is recorded as given.
    #[pyo3(signature = (t, b, *, shards = None, model = None, tokenizer = None))]
    fn finish(
        &self,
        t: f64,
        b: f64,
        shards: Option<Vec<PathBuf>>,
        model: Option<String>,
        tokenizer: Option<String>,
    ) -> PyResult<PathBuf> {
        positive_finite("t", t)?;
        if !b.is_finite() {
            return Err(PyValueError::new_err(format!("b = {b}: must be finite")));
        }
        let writer = self
            .writer
            .lock()
            .expect("never poisoned")
            .take()
            .ok_or_else(|| PyValueError::new_err("the cache is already finished"))?;
        let identify = |s: Option<String>| -> jester::Result<String> {
            match s {
                Some(s) if std::path::Path::new(&s).is_file() => {
                    file_hash(std::path::Path::new(&s))
                }
                Some(s) => Ok(s),
                None => Ok("unknown".into()),
            }
        };
        let provenance = match shards {
            Some(shards) => Some(Provenance {
                shards: shards
                    .iter()
                    .map(|s| ShardFingerprint::of(s))
                    .collect::<jester::Result<_>>()
                    .map_err(library_error)?,
                model: identify(model).map_err(library_error)?,
                checkpoint_step: None,
                tokenizer: identify(tokenizer).map_err(library_error)?,
            }),
            None => None,
        };
        writer
            .finish(t, b, provenance.as_ref())
            .map_err(library_error)
    }
}

/// A reference cache read whole, rows found by sample key.
#[pyclass(module = "jester", name = "ReferenceCache", frozen)]
struct ReferenceCache {
    cache: Mutex<EmbeddingCache>,
}

#[pymethods]
impl ReferenceCache {
    #[new]
    fn new(path: PathBuf) -> PyResult<Self> {
        let cache = EmbeddingCache::read(&path).map_err(library_error)?;
        Ok(Self {
            cache: Mutex::new(cache),
        })
    }

    /// The embeddings of `keys`, in order, on `device` ("cpu", "cuda", "cuda:1").
    #[pyo3(signature = (keys, device = "cpu"))]
    fn lookup(&self, keys: Vec<String>, device: &str) -> PyResult<Embeddings> {
        let device = parse_device(device)?;
        let found = self
            .cache
            .lock()
            .expect("never poisoned")
            .lookup(&keys, device)
            .map_err(library_error)?;
        Ok(Embeddings {
            inner: Mutex::new(found),
        })
    }

    fn __len__(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).dim()
    }

    /// What the cache was computed from (a JSON string), or None.
    #[getter]
    fn provenance(&self) -> Option<String> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .provenance()
            .map(|p| serde_json::to_string(p).expect("serialises"))
    }
}

fn parse_device(device: &str) -> PyResult<Device> {
    let parsed = match device {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => Some(0),
        other => other.strip_prefix("cuda:").and_then(|i| i.parse().ok()),
    };
    let index = parsed.ok_or_else(|| {
        PyValueError::new_err(format!("device = {device:?}: expected cpu, cuda or cuda:N"))
    })?;
    let count = tch::Cuda::device_count() as usize;
    if index >= count {
        return Err(PyValueError::new_err(format!(
            "device = {device:?}: this machine has {count} CUDA device(s)"
        )));
    }
    Ok(Device::Cuda(index))
}

#[pymodule]
fn _jester(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Embeddings>()?;
    m.add_class::<ReferenceCacheWriter>()?;
    m.add_class::<ReferenceCache>()?;
    m.add_function(wrap_pyfunction!(select, m)?)?;
    m.add_function(wrap_pyfunction!(sigmoid_loss, m)?)?;
    m.add_function(wrap_pyfunction!(softmax_loss, m)?)?;
    m.add_function(wrap_pyfunction!(scores, m)?)?;
    Ok(())
}
