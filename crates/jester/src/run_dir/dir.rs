//! [`RunDir`]: the paths and files of a run folder.
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use jester_data::atomic::{write_atomic, write_atomic_with, write_json_atomic};
use jester_data::tokenizer::TextTokenizer;

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::model::TwoTower;

use super::inputs::RunInputs;
use super::records::{EvalLine, StepLine, TrainSummary};

/// A run folder's paths and files (no lock: a `Claim` holds one while a run writes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub const CONFIG: &'static str = "config.json";
    pub const TOKENIZER: &'static str = "tokenizer.json";
    pub const METRICS: &'static str = "metrics.jsonl";
    pub const EVAL: &'static str = "eval.jsonl";
    pub const SUMMARY: &'static str = "summary.json";
    pub const MODEL: &'static str = "model.safetensors";

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Whether the folder holds a run (its config was written).
    pub fn exists(&self) -> bool {
        self.join(Self::CONFIG).exists()
    }

    /// Whether the run finished (its summary was written).
    pub fn is_finished(&self) -> bool {
        self.join(Self::SUMMARY).exists()
    }

    pub fn config(&self) -> Result<TrainConfig> {
        self.read_json(Self::CONFIG, "a jester training config")
    }

    pub fn inputs(&self) -> Result<RunInputs> {
        self.read_json(RunInputs::FILE, "a jester run's inputs")
    }

    pub fn summary(&self) -> Result<TrainSummary> {
        self.read_json(Self::SUMMARY, "a jester run summary")
    }

    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        let path = self.join(Self::TOKENIZER);
        TextTokenizer::from_file(&path).map_err(|e| Error::Input {
            path,
            what: format!("cannot read the run's tokenizer ({e})"),
        })
    }

    /// The metrics lines (`metrics.jsonl`); an incomplete last line (a run being written) is left
    /// out.
    pub fn metrics(&self) -> Result<Vec<StepLine>> {
        self.read_lines(Self::METRICS)
    }

    /// The evaluations (`eval.jsonl`), in step order.
    pub fn evals(&self) -> Result<Vec<EvalLine>> {
        self.read_lines(Self::EVAL)
    }

    pub fn write_config(&self, config: &TrainConfig) -> Result<()> {
        Ok(write_json_atomic(&self.join(Self::CONFIG), config)?)
    }

    pub fn write_inputs(&self, inputs: &RunInputs) -> Result<()> {
        Ok(write_json_atomic(&self.join(RunInputs::FILE), inputs)?)
    }

    pub fn write_tokenizer(&self, tokenizer: &TextTokenizer) -> Result<()> {
        Ok(tokenizer.save(self.join(Self::TOKENIZER))?)
    }

    pub fn write_summary(&self, summary: &TrainSummary) -> Result<()> {
        Ok(write_json_atomic(&self.join(Self::SUMMARY), summary)?)
    }

    /// The final weights, written atomically.
    pub fn write_model(&self, model: &TwoTower) -> Result<()> {
        save_model_atomic(model, &self.join(Self::MODEL))
    }

    /// Appends one line to the JSONL file `name` and flushes it.
    pub fn append_line(&self, name: &str, line: &impl Serialize) -> Result<()> {
        let path = self.join(name);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_string(line).expect("records serialise");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        writeln!(file, "{text}")
            .and_then(|()| file.flush())
            .map_err(io)
    }

    /// Keeps only the complete lines of `name` whose step is ≤ `step` (a resumed run writes the
    /// rest again); `step` 0 empties the file.
    pub fn truncate_lines(&self, name: &str, step: usize) -> Result<()> {
        let path = self.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) if step == 0 => String::new(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(Error::Io { path, source }),
        };
        let mut kept = String::new();
        for line in text.lines() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if step > 0 && value["step"].as_u64().is_some_and(|s| s as usize <= step) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        Ok(write_atomic(&path, kept.as_bytes())?)
    }

    fn read_lines<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>> {
        let path = self.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::Io { path, source }),
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(value) => out.push(value),
                // A line being written by a running process may be incomplete.
                Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
                Err(e) => {
                    return Err(Error::Input {
                        path,
                        what: format!("line {}: not a jester record ({e})", i + 1),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Reads and parses the JSON file `name`; a missing file means the folder is not a run folder,
    /// a bad one is not `what`.
    fn read_json<T: DeserializeOwned>(&self, name: &str, what: &str) -> Result<T> {
        let path = self.join(name);
        let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => Error::Input {
                path: path.clone(),
                what: "missing: not a jester run folder (`jester train --out DIR` makes one)"
                    .into(),
            },
            _ => Error::Io {
                path: path.clone(),
                source,
            },
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Input {
            path,
            what: format!("not {what} ({e})"),
        })
    }
}

/// Saves the model's weights to `path` atomically.
pub fn save_model_atomic(model: &TwoTower, path: &Path) -> Result<()> {
    write_atomic_with(path, true, |temp| model.save(temp))
}
