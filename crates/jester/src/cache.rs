//! Cached reference embeddings (docs/ALGORITHM.md §6: cache embeddings with t and b, never scores): written
//! streaming by `jester embed`, read by `train`, looked up by sample key.
//!
//! The file is an ordinary safetensors file that `jester select` also reads: `image` `[n, D]`,
//! `text` `[n, D]` (f32, L2-normalised), scalars `t` (the temperature) and `b`, and the sample keys
//! in row order as a JSON array in the metadata entry `keys`, and what the cache was computed from
//! ([`Provenance`]) in the metadata entry `provenance`.
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use tch::{Device, Kind, Tensor};

use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};
use crate::provenance::Provenance;

/// Streams rows to disk: memory O(keys), whatever the corpus size. Finish with
/// [`finish`](Self::finish); nothing appears at the destination before that (atomic rename).
pub struct EmbeddingWriter {
    out: PathBuf,
    image: BufWriter<File>,
    text: BufWriter<File>,
    image_path: PathBuf,
    text_path: PathBuf,
    keys: Vec<String>,
    seen: HashMap<String, usize>,
    dim: Option<usize>,
}

impl EmbeddingWriter {
    pub fn create(out: &Path) -> Result<Self> {
        let temp = |suffix: &str| {
            let mut name = out.file_name().unwrap_or_default().to_owned();
            name.push(format!(".{suffix}.tmp"));
            out.with_file_name(name)
        };
        let (image_path, text_path) = (temp("image"), temp("text"));
        let open = |p: &Path| {
            File::create(p)
                .map(BufWriter::new)
                .map_err(|source| Error::Io {
                    path: p.to_owned(),
                    source,
                })
        };
        Ok(Self {
            out: out.to_owned(),
            image: open(&image_path)?,
            text: open(&text_path)?,
            image_path,
            text_path,
            keys: Vec::new(),
            seen: HashMap::new(),
            dim: None,
        })
    }

    /// Appends one batch: `keys [n]`, embeddings `image`/`text` `[n, D]`.
    pub fn append(&mut self, keys: &[String], image: &Tensor, text: &Tensor) -> Result<()> {
        let dim = image.size()[1] as usize;
        if *self.dim.get_or_insert(dim) != dim {
            return Err(Error::invalid(
                "embedding writer",
                "embedding width changed mid-run",
            ));
        }
        // Every key is checked before any is recorded: a refused batch leaves the writer as it was.
        let mut batch = HashMap::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let earlier = self.seen.get(key).copied().or(batch.get(key).copied());
            if let Some(row) = earlier {
                return Err(Error::invalid(
                    "embedding writer",
                    format!(
                        "sample key {key:?} appears twice (rows {row} and {}); embeddings are keyed by \
                         sample key, so the shards must not repeat keys",
                        self.keys.len() + i
                    ),
                ));
            }
            batch.insert(key, self.keys.len() + i);
        }
        for key in keys {
            self.seen.insert(key.clone(), self.keys.len());
            self.keys.push(key.clone());
        }
        for (tensor, file, path) in [
            (image, &mut self.image, &self.image_path),
            (text, &mut self.text, &self.text_path),
        ] {
            let values: Vec<f32> = tensor
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous()
                .flatten(0, -1)
                .try_into()?;
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            file.write_all(&bytes).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Writes the safetensors file (header, then the two row files copied in, then t and b) to a
    /// temporary name and renames it into place.
    pub fn finish(mut self, t: f64, b: f64, provenance: Option<&Provenance>) -> Result<PathBuf> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        self.image.flush().map_err(io(&self.image_path))?;
        self.text.flush().map_err(io(&self.text_path))?;
        let (n, dim) = (self.keys.len(), self.dim.unwrap_or(0));
        let matrix = (n * dim * 4) as u64;
        let keys = serde_json::to_string(&self.keys).expect("keys serialise");
        let mut metadata = serde_json::json!({"keys": keys, "format": "jester-embeddings-v1"});
        if let Some(p) = provenance {
            metadata["provenance"] = serde_json::to_string(p)
                .expect("provenance serialises")
                .into();
        }
        let header = serde_json::json!({
            "__metadata__": metadata,
            "image": {"dtype": "F32", "shape": [n, dim], "data_offsets": [0, matrix]},
            "text": {"dtype": "F32", "shape": [n, dim], "data_offsets": [matrix, 2 * matrix]},
            "t": {"dtype": "F32", "shape": [], "data_offsets": [2 * matrix, 2 * matrix + 4]},
            "b": {"dtype": "F32", "shape": [], "data_offsets": [2 * matrix + 4, 2 * matrix + 8]},
        });
        let mut header = serde_json::to_vec(&header).expect("header serialises");
        while !header.len().is_multiple_of(8) {
            header.push(b' ');
        }
        let mut temp_name = self.out.file_name().unwrap_or_default().to_owned();
        temp_name.push(".tmp");
        let temp = self.out.with_file_name(temp_name);
        let mut file = BufWriter::new(File::create(&temp).map_err(io(&temp))?);
        file.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io(&temp))?;
        file.write_all(&header).map_err(io(&temp))?;
        for part in [&self.image_path, &self.text_path] {
            let mut reader = File::open(part).map_err(io(part))?;
            std::io::copy(&mut reader, &mut file).map_err(io(&temp))?;
        }
        file.write_all(&(t as f32).to_le_bytes())
            .map_err(io(&temp))?;
        file.write_all(&(b as f32).to_le_bytes())
            .map_err(io(&temp))?;
        let file = file.into_inner().map_err(|e| Error::Io {
            path: temp.clone(),
            source: e.into_error(),
        })?;
        drop(file);
        jester_data::atomic::commit(&temp, &self.out)?;
        let _ = std::fs::remove_file(&self.image_path);
        let _ = std::fs::remove_file(&self.text_path);
        Ok(self.out)
    }
}

/// A whole cache in memory, rows found by sample key.
pub struct EmbeddingCache {
    path: PathBuf,
    rows: HashMap<String, i64>,
    all: PairEmbeddings,
    provenance: Option<Provenance>,
}

impl EmbeddingCache {
    /// Reads a file [`EmbeddingWriter`] wrote (any safetensors file of that layout with `keys`).
    pub fn read(path: &Path) -> Result<Self> {
        let all = crate::io::read_safetensors(path)?;
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?;
        let input = |what: String| Error::Input {
            path: path.to_owned(),
            what,
        };
        let (_, metadata) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| input(format!("not a safetensors file ({e:?})")))?;
        let keys: Vec<String> = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("keys"))
            .ok_or_else(|| {
                input(
                    "no `keys` metadata: reference embeddings are looked up by sample key; make them \
                     with `jester embed`"
                        .into(),
                )
            })
            .and_then(|k| {
                serde_json::from_str(k).map_err(|e| input(format!("`keys` metadata is not a JSON list ({e})")))
            })?;
        let provenance = match metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get("provenance"))
        {
            Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                input(format!(
                    "`provenance` metadata is not a jester provenance record ({e})"
                ))
            })?),
            None => None,
        };
        if keys.len() != all.len() {
            return Err(input(format!("{} keys for {} rows", keys.len(), all.len())));
        }
        let mut rows = HashMap::with_capacity(keys.len());
        for (row, key) in keys.into_iter().enumerate() {
            if rows.insert(key.clone(), row as i64).is_some() {
                return Err(input(format!("sample key {key:?} appears twice")));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            rows,
            all,
            provenance,
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    pub fn dim(&self) -> usize {
        self.all.dim()
    }
    /// What the cache was computed from; `None` for caches written by other tools.
    pub fn provenance(&self) -> Option<&Provenance> {
        self.provenance.as_ref()
    }

    /// Refuses a cache computed from other shards than `shards` (see [`Provenance`]); a cache
    /// without provenance (made by another tool) is accepted with a warning.
    pub fn check_shards(&self, shards: &[PathBuf]) -> Result<()> {
        match &self.provenance {
            Some(p) => {
                p.check_covers(&self.path, shards)?;
                tracing::info!("reference cache {}: {}", self.path.display(), p.describe());
            }
            None => tracing::warn!(
                "reference cache {} records no provenance (not made by `jester embed`): cannot \
                 check that its keys belong to the shards trained on",
                self.path.display()
            ),
        }
        Ok(())
    }

    /// Whether the cache holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.rows.contains_key(key)
    }

    /// The embeddings of `keys`, in order, on `device`. A missing key is an error that names it.
    pub fn lookup(&self, keys: &[String], device: Device) -> Result<PairEmbeddings> {
        let mut index = Vec::with_capacity(keys.len());
        for key in keys {
            let row = self.rows.get(key).ok_or_else(|| Error::Input {
                path: self.path.clone(),
                what: format!(
                    "no reference embedding for sample {key:?} ({} samples cached); embed the same \
                     shards you train on: `jester embed --model REFERENCE --data SHARDS --out FILE`",
                    self.rows.len()
                ),
            })?;
            index.push(*row);
        }
        let rows = self.all.select_rows(&Tensor::from_slice(&index));
        Ok(rows.to(device, Kind::Float))
    }
}
