//! The only points where a training step touches other processes (docs/ARCHITECTURE.md,
//! "Many processes"). One process needs none of them: [`SingleProcess`] passes everything through.
//! A data-parallel run implements the trait on a process group (each rank holding its share of the
//! super-batch), so the step itself is the same code for one process and for many.
use tch::Tensor;

use crate::embeddings::PairEmbeddings;
use crate::error::Result;

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
    /// rank selects from.
    fn gather_scoring(&self, local: PairEmbeddings) -> Result<PairEmbeddings>;
    /// The trained batch's image and text embeddings over all ranks, for a loss over the global
    /// batch; this rank's rows stay in the autograd graph.
    fn gather_for_loss(&self, image: Tensor, text: Tensor) -> Result<(Tensor, Tensor)>;
    /// Sums (or averages, matching the loss's scaling) the gradients over ranks, in place.
    fn all_reduce_gradients(&self, gradients: &[Tensor]) -> Result<()>;
    /// Rank 0's initial weights to every rank, in place.
    fn broadcast_parameters(&self, parameters: &[Tensor]) -> Result<()>;
    /// Waits for every rank.
    fn barrier(&self) -> Result<()>;
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
    fn broadcast_parameters(&self, _parameters: &[Tensor]) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}
