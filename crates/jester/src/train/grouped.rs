//! Encoding a super-batch or a trained batch group by group (docs/ARCHITECTURE.md, "Many
//! processes"): with G selection groups each group is encoded on its own, as the rank holding it
//! alone would, so one process with G groups repeats a G-rank run's arithmetic. One group: one
//! call, as before groups existed.
use tch::Tensor;

use crate::embeddings::PairEmbeddings;
use crate::error::Result;
use crate::model::{BatchTensors, Precision, TwoTower};

/// `model`'s embeddings of `tensors` (inference mode, in `precision`), encoded in `groups` equal parts: each group
/// is computed as the rank holding it alone would, so a process with G groups repeats a G-rank
/// run's arithmetic (pool.rs). One group: one call.
pub(super) fn embed_grouped(
    model: &TwoTower,
    tensors: &BatchTensors,
    patch: usize,
    groups: usize,
    precision: Precision,
) -> Result<PairEmbeddings> {
    if groups <= 1 {
        return model.embed_in(tensors, patch, precision);
    }
    let per = tensors.len() / groups;
    let parts = (0..groups)
        .map(|g| model.embed_in(&tensors.narrow(g * per, (g + 1) * per), patch, precision))
        .collect::<Result<Vec<_>>>()?;
    let image = Tensor::cat(&parts.iter().map(|p| p.image()).collect::<Vec<_>>(), 0);
    let text = Tensor::cat(&parts.iter().map(|p| p.text()).collect::<Vec<_>>(), 0);
    PairEmbeddings::wrap(image, text, parts[0].temperature(), parts[0].bias())
}

/// The trained batch's embeddings, each group's b / G rows encoded on their own (as the rank
/// holding the group alone would: pool.rs), with `parts` covering all groups in order.
pub(super) fn train_grouped(
    model: &TwoTower,
    batch: &BatchTensors,
    parts: &[(usize, usize)],
    groups: usize,
) -> Result<(Tensor, Tensor)> {
    if groups <= 1 {
        return model.train_embeddings(batch, parts);
    }
    let per_parts = parts.len() / groups;
    let per_rows = batch.len() / groups;
    let (mut images, mut texts) = (Vec::new(), Vec::new());
    for g in 0..groups {
        let rows = batch.narrow(g * per_rows, (g + 1) * per_rows);
        let (image, text) =
            model.train_embeddings(&rows, &parts[g * per_parts..(g + 1) * per_parts])?;
        images.push(image);
        texts.push(text);
    }
    Ok((Tensor::cat(&images, 0), Tensor::cat(&texts, 0)))
}
