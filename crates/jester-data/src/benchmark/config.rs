//! What both benchmark generators share: the pool/curated/eval sizes and noise rates, and the splits.
use serde::{Deserialize, Serialize};

use super::noise::{CuratedNoise, CurationLevel, NoiseRates};
use crate::error::{Error, Result};

/// The part of a benchmark config that both generators share (nested as `benchmark` in their
/// configs: serde cannot flatten with `deny_unknown_fields`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BenchmarkConfig {
    /// Samples in the raw pool.
    pub pool: usize,
    /// Samples in *each* curated set (strong, moderate, weak): the curation ablation compares
    /// levels at equal size.
    pub curated: usize,
    /// Samples in the clean evaluation set.
    pub eval: usize,
    /// Fraction of `eval` that is single-object scenes labelled with a zero-shot class (balanced
    /// over classes); the rest are multi-object scenes for retrieval only (`class` null).
    pub eval_single_fraction: f64,
    pub samples_per_shard: usize,
    /// Noise rates of the raw pool (default [`NoiseRates::POOL`]).
    pub pool_noise: NoiseRates,
    /// Noise rates of each curated set (defaults: [`CurationLevel::default_rates`]).
    pub curated_noise: CuratedNoise,
    /// Number of scene clusters (topics).
    pub clusters: usize,
    /// Probability that a scene is drawn from its cluster's prototype rather than the whole world.
    pub cluster_strength: f64,
    pub seed: u64,
}

impl Default for BenchmarkConfig {
    fn default() -> Self {
        Self {
            pool: 50_000,
            curated: 5_000,
            eval: 2_000,
            eval_single_fraction: 0.5,
            samples_per_shard: 1_000,
            pool_noise: NoiseRates::POOL,
            curated_noise: CuratedNoise::default(),
            clusters: 32,
            cluster_strength: 0.8,
            seed: 0,
        }
    }
}

impl BenchmarkConfig {
    /// A few hundred samples: for smoke tests and demos.
    pub fn tiny() -> Self {
        Self {
            pool: 1_024,
            curated: 256,
            eval: 256,
            samples_per_shard: 256,
            clusters: 8,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| {
            Err(Error::Config {
                what: "benchmark config",
                why,
            })
        };
        for (name, n) in [
            ("pool", self.pool),
            ("curated", self.curated),
            ("eval", self.eval),
            ("samples_per_shard", self.samples_per_shard),
            ("clusters", self.clusters),
        ] {
            if n == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        for (name, x) in [
            ("eval_single_fraction", self.eval_single_fraction),
            ("cluster_strength", self.cluster_strength),
        ] {
            if !(0.0..=1.0).contains(&x) {
                return bad(format!("{name} = {x} must be in [0, 1]"));
            }
        }
        self.pool_noise.validate("pool_noise")?;
        for level in CurationLevel::ALL {
            self.curated_noise
                .rates(level)
                .validate(level.config_field())?;
        }
        Ok(())
    }
}

/// The splits of a benchmark, named as their folders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    Pool,
    CuratedStrong,
    CuratedModerate,
    CuratedWeak,
    Eval,
}

impl Split {
    pub const ALL: [Split; 5] = [
        Split::Pool,
        Split::CuratedStrong,
        Split::CuratedModerate,
        Split::CuratedWeak,
        Split::Eval,
    ];

    /// The folder name, also the `split` field of each sample's `.json`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Pool => "pool",
            Split::CuratedStrong => "curated-strong",
            Split::CuratedModerate => "curated-moderate",
            Split::CuratedWeak => "curated-weak",
            Split::Eval => "eval",
        }
    }

    pub fn curated(level: CurationLevel) -> Split {
        match level {
            CurationLevel::Strong => Split::CuratedStrong,
            CurationLevel::Moderate => Split::CuratedModerate,
            CurationLevel::Weak => Split::CuratedWeak,
        }
    }

    /// The ChaCha stream of this split's generator (stream 0 draws the world), so a split's
    /// samples do not change when another split's size does.
    pub(super) fn stream(self) -> u64 {
        1 + Split::ALL.iter().position(|&s| s == self).expect("in ALL") as u64
    }
}
