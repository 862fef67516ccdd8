//! `jester.ReferenceCacheWriter` and `jester.ReferenceCache`: reference embeddings by sample key, in
//! the format `jester train --reference` reads.
use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_tch::PyTensor;

use jester::cache::{EmbeddingCache, EmbeddingWriter};
use jester::provenance::{file_hash, Provenance, ShardFingerprint};

use crate::checks::{library_error, pair, parse_device, positive_finite};
use crate::embeddings::Embeddings;

/// Writes a reference cache (`jester train --reference`'s format) in pieces.
#[pyclass(module = "jester", name = "ReferenceCacheWriter")]
pub(crate) struct ReferenceCacheWriter {
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
pub(crate) struct ReferenceCache {
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

    /// The keys of `keys` the cache does not hold, in order (none: every key is there). Looks
    /// nothing up: a check before training, for any number of keys.
    fn missing(&self, keys: Vec<String>) -> Vec<String> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        keys.into_iter().filter(|k| !cache.contains(k)).collect()
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
