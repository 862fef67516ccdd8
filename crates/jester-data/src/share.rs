//! A loader's share of the shards, for data-parallel training (docs/ARCHITECTURE.md, "Many
//! processes"): share `index` of `count` reads a disjoint, deterministic part of the corpus.
//!
//! When the shards deal out evenly — a multiple of the share count, or at least ten per share (at
//! most 10 % more for one share than another) — a share owns whole shards (shard `i` belongs to
//! share `i mod count`, in the order given), so each process opens only its own files. Otherwise
//! every share reads every shard in the same seeded order and keeps the items whose number in that
//! stream is `index mod count`: the shares still partition the corpus evenly, at the cost of each
//! process reading (not decoding) all of it. Every share draws the same number per step, so shares
//! of unequal size would see their samples at unequal rates: keep shard sizes equal.
use std::path::PathBuf;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Share {
    pub index: usize,
    pub count: usize,
}

impl Share {
    /// The whole corpus: what a single loader reads.
    pub const WHOLE: Share = Share { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::Config {
                what: "loader share",
                why: format!("share {index} of {count}: needs 0 ≤ index < count"),
            });
        }
        Ok(Self { index, count })
    }

    /// Whether shares split by shard (else by sample) for `shards` files.
    pub fn by_shard(&self, shards: usize) -> bool {
        shards >= self.count && (shards.is_multiple_of(self.count) || shards >= 10 * self.count)
    }

    /// The shards this share opens.
    pub fn shards(&self, shards: Vec<PathBuf>) -> Vec<PathBuf> {
        if self.count == 1 || !self.by_shard(shards.len()) {
            return shards;
        }
        shards
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, s)| s)
            .collect()
    }

    /// A seed for this share's own randomness (its shuffle buffer), the given seed for the whole.
    pub fn seed(&self, seed: u64) -> u64 {
        if self.count == 1 {
            seed
        } else {
            seed ^ (self.index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_dealt_round_robin_and_cover_the_corpus() {
        let seven: Vec<PathBuf> = (0..7).map(|i| PathBuf::from(format!("s{i}.tar"))).collect();
        let mut all = Vec::new();
        let mut shards: Vec<PathBuf> = (0..31)
            .map(|i| PathBuf::from(format!("s{i}.tar")))
            .collect();
        for index in 0..3 {
            let mine = Share::new(index, 3).unwrap().shards(shards.clone());
            assert!(mine.len() == 10 || mine.len() == 11);
            all.extend(mine);
        }
        all.sort();
        shards.sort();
        assert_eq!(all, shards);
        // Fewer shards than shares, or an uneven deal: every share reads them all (and splits by
        // sample); many shards deal out by shard even when not a multiple.
        let few = Share::new(3, 8).unwrap();
        assert!(!few.by_shard(7));
        assert_eq!(few.shards(seven.clone()), seven);
        assert!(!Share::new(0, 4).unwrap().by_shard(6));
        assert!(Share::new(0, 4).unwrap().by_shard(41));
    }

    #[test]
    fn bad_shares_are_refused() {
        assert!(Share::new(2, 2).is_err());
        assert!(Share::new(0, 0).is_err());
        assert_eq!(Share::WHOLE.seed(5), 5);
        assert_ne!(
            Share::new(0, 2).unwrap().seed(5),
            Share::new(1, 2).unwrap().seed(5)
        );
    }
}
