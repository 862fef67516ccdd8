//! [`Collective`] on a process group: four primitives (all-gather, all-reduce, broadcast,
//! barrier) that PyTorch's `torch.distributed` provides for gloo and NCCL alike. Everything else
//! (the loss's gather with a live slice, bucketed gradient reduction, bytes) is built here once.
use tch::{Device, Kind, Tensor};

use super::Collective;
use crate::embeddings::PairEmbeddings;
use crate::error::Result;

/// A process group's primitives. Tensors are contiguous and on [`device`](Self::device); every
/// rank calls the same operations in the same order (as with `torch.distributed`).
pub trait ProcessGroup {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Where collective buffers live: the rank's GPU under NCCL, the CPU under gloo.
    fn device(&self) -> Device;
    /// `[W·n, ...]` from every rank's `[n, ...]` (the same shape on every rank), in rank order.
    fn all_gather(&self, tensor: &Tensor) -> Result<Tensor>;
    /// Sums `tensor` over ranks, in place.
    fn all_reduce_sum(&self, tensor: &Tensor) -> Result<()>;
    /// Rank `root`'s `tensor` to every rank, in place.
    fn broadcast(&self, tensor: &Tensor, root: usize) -> Result<()>;
    fn barrier(&self) -> Result<()>;
}

/// Gradients are reduced in buckets of at most this many elements (64 MiB of f32): one call for
/// the models here, a few for large ones, without doubling the gradients' memory.
const BUCKET: i64 = 16 << 20;

/// [`Collective`] over a [`ProcessGroup`].
pub struct Distributed<G: ProcessGroup> {
    group: G,
}

impl<G: ProcessGroup> Distributed<G> {
    pub fn new(group: G) -> Self {
        Self { group }
    }

    fn gather(&self, tensor: &Tensor) -> Result<Tensor> {
        let on = tensor.device();
        let local = tensor.detach().to_device(self.group.device()).contiguous();
        Ok(self.group.all_gather(&local)?.to_device(on))
    }

    /// Applies `op` to `tensors` packed into flat buffers of one dtype on the group's device, then
    /// copies the result back into them.
    fn flat(&self, tensors: &[Tensor], op: impl Fn(&Tensor) -> Result<()>) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let mut start = 0;
        while start < tensors.len() {
            let mut end = start;
            let mut size = 0;
            let kind = tensors[start].kind();
            while end < tensors.len()
                && tensors[end].kind() == kind
                && (end == start || size + tensors[end].numel() as i64 <= BUCKET)
            {
                size += tensors[end].numel() as i64;
                end += 1;
            }
            let parts: Vec<Tensor> = tensors[start..end]
                .iter()
                .map(|t| t.detach().reshape([-1]).to_device(self.group.device()))
                .collect();
            let buffer = Tensor::cat(&parts, 0);
            op(&buffer)?;
            let mut offset = 0;
            for t in &tensors[start..end] {
                let n = t.numel() as i64;
                let part = buffer.narrow(0, offset, n).reshape(t.size());
                t.detach().copy_(&part);
                offset += n;
            }
            start = end;
        }
        Ok(())
    }

    fn scalar_lengths(&self, n: usize) -> Result<Vec<i64>> {
        let length = Tensor::from_slice(&[n as i64]).to_device(self.group.device());
        Ok(Vec::<i64>::try_from(
            self.group.all_gather(&length)?.to_device(Device::Cpu),
        )?)
    }
}

impl<G: ProcessGroup> Collective for Distributed<G> {
    fn rank(&self) -> usize {
        self.group.rank()
    }
    fn world_size(&self) -> usize {
        self.group.world_size()
    }

    fn gather_scoring(&self, local: PairEmbeddings) -> Result<PairEmbeddings> {
        let image = self.gather(local.image())?;
        let text = self.gather(local.text())?;
        PairEmbeddings::wrap(image, text, local.temperature(), local.bias())
    }

    fn gather_for_loss(&self, image: Tensor, text: Tensor) -> Result<(Tensor, Tensor)> {
        let (rank, world) = (self.rank() as i64, self.world_size() as i64);
        let live = |own: Tensor, all: Tensor| -> Tensor {
            // Every rank's rows as constants, with this rank's own slice put back live, so the
            // global loss's gradient reaches this rank's towers exactly once over the group.
            let n = own.size()[0];
            let mut parts = Vec::with_capacity(3);
            if rank > 0 {
                parts.push(all.narrow(0, 0, rank * n));
            }
            parts.push(own);
            if rank + 1 < world {
                parts.push(all.narrow(0, (rank + 1) * n, (world - rank - 1) * n));
            }
            Tensor::cat(&parts, 0)
        };
        let all_image = self.gather(&image)?;
        let all_text = self.gather(&text)?;
        Ok((live(image, all_image), live(text, all_text)))
    }

    fn all_reduce_gradients(&self, gradients: &[Tensor]) -> Result<()> {
        self.flat(gradients, |b| self.group.all_reduce_sum(b))
    }

    fn broadcast_parameters(&self, tensors: &[Tensor]) -> Result<()> {
        self.flat(tensors, |b| self.group.broadcast(b, 0))
    }

    fn broadcast_bytes(&self, bytes: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let n = bytes.as_ref().map_or(0, Vec::len) as i64;
        let length = Tensor::from_slice(&[n]).to_device(self.group.device());
        self.group.broadcast(&length, 0)?;
        let n = length.int64_value(&[0]);
        let buffer = match bytes {
            Some(b) if self.rank() == 0 => Tensor::from_slice(&b),
            _ => Tensor::zeros([n], (Kind::Uint8, Device::Cpu)),
        }
        .to_device(self.group.device());
        self.group.broadcast(&buffer, 0)?;
        Ok(Vec::<u8>::try_from(buffer.to_device(Device::Cpu))?)
    }

    fn any(&self, flag: bool) -> Result<bool> {
        let count = Tensor::from_slice(&[f32::from(u8::from(flag))]).to_device(self.group.device());
        self.group.all_reduce_sum(&count)?;
        Ok(count.double_value(&[0]) > 0.0)
    }

    fn all_gather_bytes(&self, bytes: Vec<u8>) -> Result<Vec<Vec<u8>>> {
        let lengths = self.scalar_lengths(bytes.len())?;
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let mut padded = bytes;
        padded.resize(longest as usize, 0);
        let all = self
            .group
            .all_gather(&Tensor::from_slice(&padded).to_device(self.group.device()))?;
        let all = Vec::<u8>::try_from(all.to_device(Device::Cpu))?;
        Ok(lengths
            .iter()
            .enumerate()
            .map(|(r, &n)| {
                let start = r * longest as usize;
                all[start..start + n as usize].to_vec()
            })
            .collect())
    }

    fn gather_rows(&self, local: &Tensor) -> Result<Tensor> {
        let n = local.size()[0];
        let lengths = self.scalar_lengths(n as usize)?;
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let mut shape = local.size();
        shape[0] = longest - n;
        let padded = Tensor::cat(
            &[
                local.detach(),
                Tensor::zeros(&shape, (local.kind(), local.device())),
            ],
            0,
        );
        let all = self.gather(&padded)?;
        let parts: Vec<Tensor> = lengths
            .iter()
            .enumerate()
            .map(|(r, &n)| all.narrow(0, r as i64 * longest, n))
            .collect();
        Ok(Tensor::cat(&parts, 0))
    }

    fn barrier(&self) -> Result<()> {
        self.group.barrier()
    }
}
