//! A loader's share of the shards, for data-parallel training (docs/ARCHITECTURE.md, "Many
//! processes"): share `index` of `count` reads a disjoint, deterministic part of the corpus.
//!
//! With at least as many shards as shares, a share owns whole shards (shard `i` belongs to share
//! `i mod count`, in the order given), so each process opens only its own files. With fewer shards
//! than shares, every share reads every shard in the same seeded order and keeps the items whose
//! number in that stream is `index mod count`; the shares still partition the corpus, at the cost
//! of each process reading (not decoding) all of it.
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
        shards >= self.count
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
        let shards: Vec<PathBuf> = (0..7).map(|i| PathBuf::from(format!("s{i}.tar"))).collect();
        let mut all = Vec::new();
        for index in 0..3 {
            let mine = Share::new(index, 3).unwrap().shards(shards.clone());
            assert!(mine.len() == 2 || mine.len() == 3);
            all.extend(mine);
        }
        all.sort();
        assert_eq!(all, shards);
        // Fewer shards than shares: every share reads them all (and splits by sample).
        let few = Share::new(3, 8).unwrap();
        assert!(!few.by_shard(7));
        assert_eq!(few.shards(shards.clone()), shards);
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
