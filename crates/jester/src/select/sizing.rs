//! Integer sizing of a selection: b from B and f, and the chunk sizes (docs/ALGORITHM.md §1, §4).
//!
//! Floats round badly here: `int(163840 * (1 - 0.8) / 16)` is 2047, not 2048. So f is read as the
//! exact decimal it was written as (Rust prints the shortest decimal that round-trips, so 0.8 is
//! "0.8") and b = ⌊B · (1 − f)⌋ is computed in integers.
use crate::error::{Error, Result};

/// How many examples to keep, and in how many chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SelectionSize {
    /// B, the super-batch.
    pub super_batch: usize,
    /// b, the sub-batch kept for the gradient step.
    pub batch: usize,
    /// N, the number of chunks.
    pub chunks: usize,
}

impl SelectionSize {
    /// b of B in N chunks; needs 1 ≤ N ≤ b ≤ B.
    pub fn new(super_batch: usize, batch: usize, chunks: usize) -> Result<Self> {
        const OP: &str = "SelectionSize";
        if chunks == 0 {
            return Err(Error::invalid(
                OP,
                "the number of chunks must be at least 1",
            ));
        }
        if batch == 0 || batch > super_batch {
            return Err(Error::invalid(
                OP,
                format!("batch b = {batch} must be in 1..=B with super-batch B = {super_batch}"),
            ));
        }
        if chunks > batch {
            return Err(Error::invalid(
                OP,
                format!("{chunks} chunks cannot split a batch of {batch}; use at most {batch}"),
            ));
        }
        Ok(Self {
            super_batch,
            batch,
            chunks,
        })
    }

    /// b = ⌊B · (1 − f)⌋ for a filtering ratio 0 ≤ f < 1, computed without float rounding.
    pub fn from_filter_ratio(super_batch: usize, filter_ratio: f64, chunks: usize) -> Result<Self> {
        let batch = batch_from_filter_ratio(super_batch, filter_ratio)?;
        Self::new(super_batch, batch, chunks)
    }

    /// The size of each chunk: ⌊b/N⌋ each, the last one taking the remainder (so it is the
    /// larger one when N does not divide b). The sizes sum to b.
    pub fn chunk_sizes(&self) -> Vec<usize> {
        let base = self.batch / self.chunks;
        let mut sizes = vec![base; self.chunks];
        sizes[self.chunks - 1] = self.batch - base * (self.chunks - 1);
        sizes
    }

    /// The realised filtering ratio 1 − b/B.
    pub fn filter_ratio(&self) -> f64 {
        1.0 - self.batch as f64 / self.super_batch as f64
    }
}

/// ⌊B · (1 − f)⌋ from the decimal digits of f.
pub fn batch_from_filter_ratio(super_batch: usize, filter_ratio: f64) -> Result<usize> {
    let (numerator, denominator) = filter_fraction(filter_ratio)?;
    let kept = (super_batch as u128) * (denominator - numerator) / denominator;
    Ok(kept as usize)
}

/// B = ⌈b / (1 − f)⌉ from the decimal digits of f: the smallest super-batch from which keeping a
/// fraction 1 − f leaves at least b (the inverse of [`batch_from_filter_ratio`]).
pub fn super_batch_for(batch: usize, filter_ratio: f64) -> Result<usize> {
    let (numerator, denominator) = filter_fraction(filter_ratio)?;
    let kept = denominator - numerator;
    Ok(((batch as u128) * denominator).div_ceil(kept) as usize)
}

/// f as the exact fraction p/q of its decimal digits, for 0 ≤ f < 1.
fn filter_fraction(filter_ratio: f64) -> Result<(u128, u128)> {
    if !(0.0..1.0).contains(&filter_ratio) {
        return Err(Error::invalid(
            "filter ratio",
            format!("f = {filter_ratio} must be in [0, 1)"),
        ));
    }
    decimal_fraction(filter_ratio).ok_or_else(|| {
        Error::invalid(
            "filter ratio",
            format!("f = {filter_ratio} has too many decimals; give the batch size instead"),
        )
    })
}

/// The exact fraction p/q (q a power of ten) that f's shortest decimal form spells.
fn decimal_fraction(f: f64) -> Option<(u128, u128)> {
    let text = format!("{f}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    // Only called for 0 <= f < 1, whose integer part is "0".
    if int != "0" || frac.len() > 18 {
        return None;
    }
    let denominator = 10u128.pow(frac.len() as u32);
    let numerator = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    Some((numerator, denominator))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_sizes_are_exact_where_floats_are_not() {
        // int(163840 * (1 - 0.8) / 16) == 2047 in floats.
        let size = SelectionSize::from_filter_ratio(163_840, 0.8, 16).unwrap();
        assert_eq!(size.batch, 32_768);
        assert_eq!(size.chunk_sizes(), vec![2048; 16]);
        assert_eq!(batch_from_filter_ratio(20_480, 0.8).unwrap(), 4096);
        assert_eq!(batch_from_filter_ratio(10, 0.5).unwrap(), 5);
        assert_eq!(batch_from_filter_ratio(10, 0.9).unwrap(), 1);
        assert_eq!(batch_from_filter_ratio(7, 0.0).unwrap(), 7);
        assert_eq!(batch_from_filter_ratio(1000, 0.333).unwrap(), 667);
    }

    #[test]
    fn the_super_batch_is_exact_and_inverts_the_batch() {
        assert_eq!(super_batch_for(256, 0.8).unwrap(), 1280);
        assert_eq!(super_batch_for(32_768, 0.8).unwrap(), 163_840);
        assert_eq!(super_batch_for(16, 0.8).unwrap(), 80);
        assert_eq!(super_batch_for(16, 0.0).unwrap(), 16);
        assert_eq!(super_batch_for(10, 0.333).unwrap(), 15);
        assert_eq!(super_batch_for(100, 0.9).unwrap(), 1000);
        for b in 1..300 {
            for f in [0.0, 0.1, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 0.333] {
                let big = super_batch_for(b, f).unwrap();
                assert!(batch_from_filter_ratio(big, f).unwrap() >= b, "b {b} f {f}");
                assert!(
                    batch_from_filter_ratio(big - 1, f).unwrap() < b,
                    "b {b} f {f}"
                );
            }
        }
        assert!(super_batch_for(10, 1.0).is_err());
        assert!(super_batch_for(10, f64::NAN).is_err());
    }

    #[test]
    fn uneven_batches_give_the_remainder_to_the_last_chunk() {
        let size = SelectionSize::new(100, 40, 16).unwrap();
        let sizes = size.chunk_sizes();
        assert_eq!(sizes.len(), 16);
        assert_eq!(&sizes[..15], &[2; 15]);
        assert_eq!(sizes[15], 10);
        assert_eq!(sizes.iter().sum::<usize>(), 40);
    }

    #[test]
    fn bad_sizes_are_refused_with_the_numbers() {
        let err = SelectionSize::new(10, 11, 1).unwrap_err().to_string();
        assert!(err.contains("11") && err.contains("10"), "{err}");
        assert!(SelectionSize::new(10, 3, 4).is_err());
        assert!(SelectionSize::new(10, 0, 1).is_err());
        assert!(SelectionSize::new(10, 5, 0).is_err());
        assert!(batch_from_filter_ratio(10, 1.0).is_err());
        assert!(batch_from_filter_ratio(10, -0.1).is_err());
        assert!(batch_from_filter_ratio(10, f64::NAN).is_err());
    }
}
