//! The order of the selected examples inside the trained batch.
//!
//! Selection returns its chunks best-first, and Flexi-JEST's multi-resolution step (docs/ALGORITHM.md §5)
//! encodes the first rows at full resolution and the rest at the scoring patch size. Kept in
//! selection order, chunk 1 (drawn on the diagonal alone) would always train at full resolution,
//! confounding resolution with selection order; a seeded shuffle gives every chunk the same
//! chance of either resolution.
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The rows of `selected` (super-batch indices, selection order) in the order the step trains on
/// them: unchanged for a batch encoded in one part, shuffled by `seed` when it is split in several.
pub(crate) fn training_order(selected: &[i64], parts: usize, seed: u64) -> Vec<i64> {
    let mut rows = selected.to_vec();
    if parts > 1 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Another stream than the selection's Gumbel noise, which the same step seed drives.
        rng.set_stream(1);
        rows.shuffle(&mut rng);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_part_keeps_the_selection_order() {
        let selected: Vec<i64> = (0..40).rev().collect();
        assert_eq!(training_order(&selected, 1, 3), selected);
    }

    #[test]
    fn every_chunk_reaches_both_resolutions_evenly() {
        // 64 selected in 16 chunks of 4; the first 32 rows train at full resolution. Over 500
        // seeds each chunk's members land there half the time (binomial over 2,000 placements:
        // sd ≈ 0.011, so ±0.07 is > 6 sd); in selection order chunk 1 would always be there.
        let selected: Vec<i64> = (0..64).map(|i| i * 3 + 1).collect();
        let seeds = 500u64;
        let mut full = [0u32; 16];
        for seed in 0..seeds {
            let order = training_order(&selected, 2, seed);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, selected, "a permutation of the selection");
            for row in &order[..32] {
                let position = selected.iter().position(|s| s == row).unwrap();
                full[position / 4] += 1;
            }
        }
        for (chunk, &n) in full.iter().enumerate() {
            let share = n as f64 / (seeds as f64 * 4.0);
            assert!((share - 0.5).abs() < 0.07, "chunk {chunk}: {share}");
        }
    }
}
