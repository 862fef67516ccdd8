//! The library's one error type: every variant says what disagreed with what.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor had the wrong shape for an operation.
    #[error("{op}: expected {expected}, got shape {got:?}")]
    Shape {
        op: &'static str,
        expected: String,
        got: Vec<i64>,
    },
    /// An argument was out of range or inconsistent with another.
    #[error("{op}: {what}")]
    Invalid { op: &'static str, what: String },
    /// A file a user gave could not be used; `what` says why and how to fix it.
    #[error("{}: {what}", path.display())]
    Input { path: PathBuf, what: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds the lock on something this one would write.
    #[error("{}: {what} is in use by another process ({holder}); wait for it to end, or stop it", path.display())]
    Locked {
        path: PathBuf,
        what: String,
        holder: String,
    },
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Data(#[from] jester_data::Error),
    /// Training met a NaN or infinite value; the run stops, the last checkpoint stays good.
    #[error("{what} at step {step}; stopped. Last good checkpoint: {}", checkpoint.as_ref().map_or("none yet".into(), |p| p.display().to_string()))]
    NonFinite {
        step: usize,
        what: String,
        checkpoint: Option<PathBuf>,
    },
    /// Another process of a data-parallel run failed, or the ranks disagree.
    #[error("data-parallel run, rank {rank}: {what}")]
    Distributed { rank: usize, what: String },
}

impl Error {
    pub(crate) fn invalid(op: &'static str, what: impl Into<String>) -> Self {
        Error::Invalid {
            op,
            what: what.into(),
        }
    }
}
