//! The kinds of web noise a benchmark carries, each at a known rate (docs/DATA.md, "The raw pool mimics
//! web noise"), and the rates of the curated sets at each curation level (the paper's reference-
//! curation ablation, docs/ALGORITHM.md §8: strong / moderate / weak).
//!
//! The default rates are fixed up front and are not tuned to favour any selection method:
//! pool = misaligned 0.20, partly-wrong 0.10, uninformative 0.10, corrupted-image 0.05,
//! near-duplicate 0.10 (clean 0.45); curated-strong = all clean; curated-moderate = 0.25 × pool;
//! curated-weak = 0.75 × pool ("almost the raw pool's distribution", still strictly better).
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What was done to a sample; every sample carries its kind as ground truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseKind {
    /// Image and caption match.
    Clean,
    /// The caption is another sample's clean caption (`caption_of` names it).
    Misaligned,
    /// One attribute or object of the caption is replaced (`wrong` says which).
    PartlyWrong,
    /// The caption says nothing: "image", "photo 1234", "untitled", "IMG_0042.jpg", "DSC00123".
    Uninformative,
    /// The image is heavy noise, blank or near-blank (`corruption` says which); caption kept.
    CorruptedImage,
    /// A near-copy of another sample (`duplicate_of`): pixels slightly shifted and noised, the
    /// same or a lightly perturbed caption.
    NearDuplicate,
}

impl NoiseKind {
    pub const ALL: [NoiseKind; 6] = [
        NoiseKind::Clean,
        NoiseKind::Misaligned,
        NoiseKind::PartlyWrong,
        NoiseKind::Uninformative,
        NoiseKind::CorruptedImage,
        NoiseKind::NearDuplicate,
    ];

    /// The name used in `.json` files and summaries.
    pub fn name(self) -> &'static str {
        match self {
            NoiseKind::Clean => "clean",
            NoiseKind::Misaligned => "misaligned",
            NoiseKind::PartlyWrong => "partly-wrong",
            NoiseKind::Uninformative => "uninformative",
            NoiseKind::CorruptedImage => "corrupted-image",
            NoiseKind::NearDuplicate => "near-duplicate",
        }
    }
}

/// The fraction of samples of each noise kind; clean is the remainder, so the rates sum to ≤ 1.
/// Missing fields are 0 (a partial spec means "only these kinds of noise").
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseRates {
    pub misaligned: f64,
    pub partly_wrong: f64,
    pub uninformative: f64,
    pub corrupted_image: f64,
    pub near_duplicate: f64,
}

impl Default for NoiseRates {
    fn default() -> Self {
        Self::CLEAN
    }
}

impl NoiseRates {
    /// No noise at all.
    pub const CLEAN: Self = Self {
        misaligned: 0.0,
        partly_wrong: 0.0,
        uninformative: 0.0,
        corrupted_image: 0.0,
        near_duplicate: 0.0,
    };

    /// The raw pool's default: 55% noisy, misalignment the commonest kind as in web alt-text.
    pub const POOL: Self = Self {
        misaligned: 0.20,
        partly_wrong: 0.10,
        uninformative: 0.10,
        corrupted_image: 0.05,
        near_duplicate: 0.10,
    };

    /// Every rate multiplied by `factor`.
    pub fn scaled(&self, factor: f64) -> Self {
        Self {
            misaligned: self.misaligned * factor,
            partly_wrong: self.partly_wrong * factor,
            uninformative: self.uninformative * factor,
            corrupted_image: self.corrupted_image * factor,
            near_duplicate: self.near_duplicate * factor,
        }
    }

    /// The fraction of `kind`; for [`NoiseKind::Clean`], 1 − the sum of the others.
    pub fn rate(&self, kind: NoiseKind) -> f64 {
        match kind {
            NoiseKind::Clean => 1.0 - self.noisy(),
            NoiseKind::Misaligned => self.misaligned,
            NoiseKind::PartlyWrong => self.partly_wrong,
            NoiseKind::Uninformative => self.uninformative,
            NoiseKind::CorruptedImage => self.corrupted_image,
            NoiseKind::NearDuplicate => self.near_duplicate,
        }
    }

    /// The fraction of samples with any noise.
    pub fn noisy(&self) -> f64 {
        self.misaligned
            + self.partly_wrong
            + self.uninformative
            + self.corrupted_image
            + self.near_duplicate
    }

    /// `field` names these rates in the config (e.g. `pool_noise`) for the error message.
    pub fn validate(&self, field: &str) -> Result<()> {
        let bad = |why: String| {
            Err(Error::Config {
                what: "benchmark config",
                why,
            })
        };
        for kind in &NoiseKind::ALL[1..] {
            let x = self.rate(*kind);
            if !(0.0..=1.0).contains(&x) {
                return bad(format!("{field}.{} = {x} must be in [0, 1]", kind.name()));
            }
        }
        if self.noisy() > 1.0 + 1e-9 {
            return bad(format!("{field}: noise rates sum to {} > 1", self.noisy()));
        }
        Ok(())
    }
}

/// How well curated a reference model's training set is (paper: strong / moderate / weak).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CurationLevel {
    Strong,
    Moderate,
    Weak,
}

impl CurationLevel {
    pub const ALL: [CurationLevel; 3] = [
        CurationLevel::Strong,
        CurationLevel::Moderate,
        CurationLevel::Weak,
    ];

    /// Strong: clean; moderate: 0.25 × [`NoiseRates::POOL`]; weak: 0.75 × [`NoiseRates::POOL`].
    pub fn default_rates(self) -> NoiseRates {
        match self {
            CurationLevel::Strong => NoiseRates::CLEAN,
            CurationLevel::Moderate => NoiseRates::POOL.scaled(0.25),
            CurationLevel::Weak => NoiseRates::POOL.scaled(0.75),
        }
    }

    /// The level's name as configs and folder names spell it: strong, moderate, weak.
    pub fn name(self) -> &'static str {
        match self {
            CurationLevel::Strong => "strong",
            CurationLevel::Moderate => "moderate",
            CurationLevel::Weak => "weak",
        }
    }

    pub(crate) fn config_field(self) -> &'static str {
        match self {
            CurationLevel::Strong => "curated_noise.strong",
            CurationLevel::Moderate => "curated_noise.moderate",
            CurationLevel::Weak => "curated_noise.weak",
        }
    }
}

/// The noise rates of the three curated sets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CuratedNoise {
    pub strong: NoiseRates,
    pub moderate: NoiseRates,
    pub weak: NoiseRates,
}

impl Default for CuratedNoise {
    fn default() -> Self {
        Self {
            strong: CurationLevel::Strong.default_rates(),
            moderate: CurationLevel::Moderate.default_rates(),
            weak: CurationLevel::Weak.default_rates(),
        }
    }
}

impl CuratedNoise {
    pub fn rates(&self, level: CurationLevel) -> NoiseRates {
        match level {
            CurationLevel::Strong => self.strong,
            CurationLevel::Moderate => self.moderate,
            CurationLevel::Weak => self.weak,
        }
    }
}

/// The noise kind of each of `n` samples: exact counts (largest-remainder rounding of
/// `n · rate`), in random order, so a split realises its rates up to one sample per kind.
pub(crate) fn assign_kinds(n: usize, rates: &NoiseRates, rng: &mut impl Rng) -> Vec<NoiseKind> {
    let shares: Vec<f64> = NoiseKind::ALL
        .iter()
        .map(|&k| rates.rate(k).max(0.0) * n as f64)
        .collect();
    let mut counts: Vec<usize> = shares.iter().map(|s| s.floor() as usize).collect();
    let assigned: usize = counts.iter().sum();
    let mut by_remainder: Vec<usize> = (0..shares.len()).collect();
    by_remainder.sort_by(|&a, &b| {
        let (ra, rb) = (shares[a] - shares[a].floor(), shares[b] - shares[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &k in by_remainder.iter().cycle().take(n.saturating_sub(assigned)) {
        counts[k] += 1;
    }
    debug_assert_eq!(counts.iter().sum::<usize>(), n, "shares sum to n");
    let mut kinds: Vec<NoiseKind> = NoiseKind::ALL
        .iter()
        .zip(&counts)
        .flat_map(|(&k, &c)| std::iter::repeat_n(k, c))
        .collect();
    kinds.shuffle(rng);
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn assigned_counts_are_the_rounded_rates() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for n in [0, 1, 7, 100, 1001] {
            let kinds = assign_kinds(n, &NoiseRates::POOL, &mut rng);
            assert_eq!(kinds.len(), n);
            for kind in NoiseKind::ALL {
                let count = kinds.iter().filter(|&&k| k == kind).count() as f64;
                assert!(
                    (count - NoiseRates::POOL.rate(kind) * n as f64).abs() <= 1.0,
                    "{kind:?} {n}"
                );
            }
        }
        assert!(assign_kinds(50, &NoiseRates::CLEAN, &mut rng)
            .iter()
            .all(|&k| k == NoiseKind::Clean));
    }

    #[test]
    fn bad_rates_name_the_field() {
        let too_many = NoiseRates {
            misaligned: 0.6,
            uninformative: 0.5,
            ..NoiseRates::CLEAN
        };
        let err = too_many.validate("pool_noise").unwrap_err().to_string();
        assert!(err.contains("pool_noise") && err.contains("sum"), "{err}");
        let negative = NoiseRates {
            near_duplicate: -0.1,
            ..NoiseRates::CLEAN
        };
        let err = negative
            .validate("curated_noise.weak")
            .unwrap_err()
            .to_string();
        assert!(err.contains("curated_noise.weak.near-duplicate"), "{err}");
    }
}
