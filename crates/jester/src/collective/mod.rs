//! The only points where training (and `embed`) touch other processes (docs/ARCHITECTURE.md,
//! "Many processes"). One process needs none of them: [`SingleProcess`] passes everything through.
//! A data-parallel run uses [`Distributed`], the same operations on a [`ProcessGroup`] (PyTorch's
//! `torch.distributed` through the Python package), so the step is the same code for one process
//! and for many.
use tch::Tensor;

use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};

mod group;

pub use group::{Distributed, ProcessGroup};

pub trait Collective {
    /// This process's rank and the number of processes.
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    /// Every rank's scoring embeddings of its share of the super-batch (the learner's, or the
    /// reference's with its t and b), concatenated in rank order: the global super-batch that every
    /// rank selects from. Every rank passes the same number of rows.
    fn gather_scoring(&self, local: PairEmbeddings) -> Result<PairEmbeddings>;
    /// The trained batch's image and text embeddings over all ranks, in rank order, for a loss over
    /// the global batch; this rank's rows stay in the autograd graph, the others' are constants.
    fn gather_for_loss(&self, image: Tensor, text: Tensor) -> Result<(Tensor, Tensor)>;
    /// Sums the gradients over ranks, in place.
    fn all_reduce_gradients(&self, gradients: &[Tensor]) -> Result<()>;
    /// Rank 0's values of `tensors` (weights, optimiser moments) to every rank, in place.
    fn broadcast_parameters(&self, tensors: &[Tensor]) -> Result<()>;
    /// Rank 0's `bytes` to every rank (the others pass `None`).
    fn broadcast_bytes(&self, bytes: Option<Vec<u8>>) -> Result<Vec<u8>>;
    /// Every rank's `bytes`, in rank order, on every rank.
    fn all_gather_bytes(&self, bytes: Vec<u8>) -> Result<Vec<Vec<u8>>>;
    /// Every rank's rows of `local` (`[n_rank, ...]`, n may differ by rank), concatenated in rank
    /// order, on every rank.
    fn gather_rows(&self, local: &Tensor) -> Result<Tensor>;
    /// Waits for every rank.
    fn barrier(&self) -> Result<()>;
    /// Whether `flag` is set on any rank (one all-reduce of one number).
    fn any(&self, flag: bool) -> Result<bool>;
}

/// One process: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn gather_scoring(&self, local: PairEmbeddings) -> Result<PairEmbeddings> {
        Ok(local)
    }
    fn gather_for_loss(&self, image: Tensor, text: Tensor) -> Result<(Tensor, Tensor)> {
        Ok((image, text))
    }
    fn all_reduce_gradients(&self, _gradients: &[Tensor]) -> Result<()> {
        Ok(())
    }
    fn broadcast_parameters(&self, _tensors: &[Tensor]) -> Result<()> {
        Ok(())
    }
    fn broadcast_bytes(&self, bytes: Option<Vec<u8>>) -> Result<Vec<u8>> {
        Ok(bytes.unwrap_or_default())
    }
    fn all_gather_bytes(&self, bytes: Vec<u8>) -> Result<Vec<Vec<u8>>> {
        Ok(vec![bytes])
    }
    fn gather_rows(&self, local: &Tensor) -> Result<Tensor> {
        Ok(local.shallow_clone())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn any(&self, flag: bool) -> Result<bool> {
        Ok(flag)
    }
}

/// Every rank's outcome of a piece of local work, agreed before the next collective: if any rank
/// failed, every rank fails — with its own error on a rank that failed, naming the first rank that
/// failed on the others — instead of the healthy ranks waiting for a peer that has left. One
/// all-reduce of one number when every rank succeeded (the messages are gathered only after a
/// failure); nothing in one process.
pub fn all_ok<T>(collective: &dyn Collective, result: Result<T>) -> Result<T> {
    if collective.world_size() == 1 {
        return result;
    }
    if !collective.any(result.is_err())? {
        return result;
    }
    let mine = match &result {
        Ok(_) => vec![0u8],
        Err(e) => std::iter::once(1u8)
            .chain(e.to_string().into_bytes())
            .collect(),
    };
    let all = collective.all_gather_bytes(mine);
    let value = result?;
    for (rank, outcome) in all?.iter().enumerate() {
        if outcome.first() != Some(&0) {
            return Err(Error::Distributed {
                rank,
                what: String::from_utf8_lossy(outcome.get(1..).unwrap_or_default()).into_owned(),
            });
        }
    }
    Ok(value)
}

/// Rank 0's `read()` (run on rank 0 only) on every rank, or its failure: the other ranks then fail
/// naming rank 0, `what` it failed to do and its error. For what only rank 0 can see (the run
/// folder).
pub fn from_lead<T: serde::Serialize + serde::de::DeserializeOwned>(
    collective: &dyn Collective,
    what: &str,
    read: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if collective.world_size() == 1 {
        return read();
    }
    if collective.rank() == 0 {
        let value = read();
        let sent = value.as_ref().map_err(|e| e.to_string());
        collective.broadcast_bytes(Some(serde_json::to_vec(&sent).expect("serialises")))?;
        return value;
    }
    let received = collective.broadcast_bytes(None)?;
    let parsed: std::result::Result<T, String> =
        serde_json::from_slice(&received).map_err(|e| Error::Distributed {
            rank: 0,
            what: format!("what it sent does not parse ({e})"),
        })?;
    parsed.map_err(|why| Error::Distributed {
        rank: 0,
        what: format!("failed to {what}: {why}"),
    })
}

/// Every rank's `value`, in rank order, on every rank (JSON over [`Collective::all_gather_bytes`]).
pub fn all_gather_json<T: serde::Serialize + serde::de::DeserializeOwned>(
    collective: &dyn Collective,
    value: T,
) -> Result<Vec<T>> {
    if collective.world_size() == 1 {
        return Ok(vec![value]);
    }
    let mine = serde_json::to_vec(&value).expect("serialises");
    collective
        .all_gather_bytes(mine)?
        .iter()
        .enumerate()
        .map(|(rank, bytes)| {
            serde_json::from_slice(bytes).map_err(|e| Error::Distributed {
                rank,
                what: format!("what it sent does not parse ({e})"),
            })
        })
        .collect()
}
