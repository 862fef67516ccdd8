//! This process's part of the pool in a run with selection groups (docs/ALGORITHM.md §4,
//! docs/ARCHITECTURE.md "Many processes"): the super-batch is G equal groups, group g drawn from
//! share g of the shards. A rank of a W-process run owns groups [rank·G/W, (rank+1)·G/W) (one
//! each when G = W); one process with G groups owns them all, which makes it the exact twin of a
//! G-rank run. With G = 1 this is the plain loader.
use std::ops::Range;
use std::path::PathBuf;

use jester_data::loader::Work;
use jester_data::{Loader, LoaderCursor, LoaderOptions, Share};

use crate::error::{Error, Result};
use crate::input::Example;

pub(super) struct Pool {
    loaders: Vec<Loader<Example>>,
    groups: Range<usize>,
    per_group: usize,
}

impl Pool {
    /// The loaders of `rank`'s groups out of `total` (a multiple of `world`), each drawing
    /// `super_batch / total` per step, from `cursors` (this rank's groups' positions) if resuming.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        shards: Vec<PathBuf>,
        options: &LoaderOptions,
        work: Work<Example>,
        cursors: Option<Vec<LoaderCursor>>,
        super_batch: usize,
        total: usize,
        rank: usize,
        world: usize,
    ) -> Result<Self> {
        if world == 0 || !total.is_multiple_of(world) {
            return Err(Error::invalid(
                "train",
                format!(
                    "selection_groups {total} must be a multiple of the world size {world} (each \
                     rank owns the same number of groups); a data-parallel run sets it to the \
                     world size when it is 1"
                ),
            ));
        }
        let mine = total / world;
        let groups = rank * mine..(rank + 1) * mine;
        // The process's decoding threads are split over its loaders, not multiplied by them. Each
        // loader keeps at least two of its draws decoded ahead, so the next super-batch (5 or 10
        // batches when scoring) is ready when the step asks for it, whatever `prefetch` says.
        let per_draw = super_batch / total;
        let options = LoaderOptions {
            workers: (options.workers / mine).max(1),
            prefetch: (options.prefetch / mine).max(2 * per_draw).max(1),
            ..options.clone()
        };
        let mut cursors = match cursors {
            Some(c) if c.len() == mine => c.into_iter().map(Some).collect(),
            Some(c) => {
                return Err(Error::invalid(
                    "train",
                    format!("{} loader cursors for {mine} groups", c.len()),
                ))
            }
            None => vec![None; mine],
        };
        let loaders = groups
            .clone()
            .zip(cursors.iter_mut())
            .map(|(g, cursor)| {
                let share = if total == 1 {
                    Share::WHOLE
                } else {
                    Share::new(g, total)?
                };
                Ok(Loader::new_share(
                    shards.clone(),
                    &options,
                    work.clone(),
                    cursor.take(),
                    share,
                )?)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            loaders,
            groups,
            per_group: super_batch / total,
        })
    }

    /// This rank's groups.
    pub fn groups(&self) -> Range<usize> {
        self.groups.clone()
    }

    /// Rows per group (B / G).
    pub fn per_group(&self) -> usize {
        self.per_group
    }

    /// This rank's candidates: each of its groups' B / G, in group order.
    pub fn draw(&mut self) -> Result<Vec<Example>> {
        let mut examples = Vec::with_capacity(self.per_group * self.loaders.len());
        for loader in &mut self.loaders {
            examples.extend(loader.next_batch(self.per_group)?);
        }
        Ok(examples)
    }

    /// Each of this rank's loaders' positions, in group order.
    pub fn cursors(&self) -> Vec<LoaderCursor> {
        self.loaders.iter().map(|l| l.cursor().clone()).collect()
    }
}

/// The rows this rank trains on, as rows of its own candidates: the global training `order`
/// (super-batch rows) kept for this rank's `groups` and ordered group by group (stable), so that
/// the ranks' rows concatenated in rank order are the global batch in one order for any world
/// size. With one group, `order` itself.
pub(super) fn local_rows(order: &[i64], per_group: usize, groups: Range<usize>) -> Vec<i64> {
    let offset = (groups.start * per_group) as i64;
    let mut rows = Vec::new();
    for g in groups {
        let (low, high) = ((g * per_group) as i64, ((g + 1) * per_group) as i64);
        rows.extend(
            order
                .iter()
                .filter(|&&r| r >= low && r < high)
                .map(|&r| r - offset),
        );
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::local_rows;

    #[test]
    fn ranks_rows_concatenate_to_one_global_batch() {
        // B = 12 in 4 groups of 3; 2 ranks own groups 0–1 and 2–3.
        let order = [7i64, 1, 11, 3, 5, 9, 0, 10];
        assert_eq!(local_rows(&order, 12, 0..1), order.to_vec());
        let r0 = local_rows(&order, 3, 0..2);
        let r1 = local_rows(&order, 3, 2..4);
        assert_eq!(r0, vec![1, 0, 3, 5]);
        assert_eq!(r1, vec![1, 5, 3, 4]); // rows 7, 11, 9, 10 less 6
        let one = local_rows(&order, 3, 0..4);
        let global: Vec<i64> = r0.iter().copied().chain(r1.iter().map(|r| r + 6)).collect();
        assert_eq!(one, global);
    }
}
