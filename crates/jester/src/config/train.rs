//! The training run's typed config: one struct for every method, written resolved next to the run.
use serde::{Deserialize, Serialize};

use jester_data::decode::DecodeOptions;
use jester_data::LoaderOptions;

use crate::error::{Error, Result};
use crate::model::{ModelConfig, Precision};
use crate::select::ScoreKind;

/// How each step's batch is chosen (docs/ALGORITHM.md §§3–5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainMethod {
    /// b examples drawn uniformly; no scoring (the IID baseline).
    #[default]
    Uniform,
    /// Joint selection of b from a super-batch of B, N chunks (paper Alg. 1).
    Jest,
    /// b of B at once from each example's own score (the paper's ablation).
    Independent,
    /// Joint selection scored with the image tower at a larger patch size; training half at each
    /// resolution (docs/ALGORITHM.md §5).
    FlexiJest,
}

impl TrainMethod {
    pub const ALL: [Self; 4] = [
        Self::Uniform,
        Self::Jest,
        Self::Independent,
        Self::FlexiJest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Jest => "jest",
            Self::Independent => "independent",
            Self::FlexiJest => "flexi-jest",
        }
    }

    /// Whether each step scores a super-batch.
    pub fn scores(self) -> bool {
        self != Self::Uniform
    }
}

impl std::str::FromStr for TrainMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown method {s:?}; expected uniform, jest, independent or flexi-jest")
            })
    }
}

/// AdamW and its schedule (docs/ALGORITHM.md §7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate (paper: 1e-3).
    pub lr: f64,
    /// Linear warm-up over this fraction of the steps (paper: 1%), then cosine decay to 0.
    pub warmup_fraction: f64,
    /// Decoupled weight decay per step, scaled by the schedule (big_vision's convention, not
    /// multiplied by lr), on weight matrices only (paper: 1e-4).
    pub weight_decay: f64,
    /// Global gradient-norm clip (paper: 1.0); 0 = off.
    pub clip_norm: f64,
    pub beta1: f64,
    /// Paper: 0.95 (0.999 spiked at f ≥ 0.8).
    pub beta2: f64,
    pub eps: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            warmup_fraction: 0.01,
            weight_decay: 1e-4,
            clip_norm: 1.0,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
        }
    }
}

/// Flexi-JEST's two resolutions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlexiConfig {
    /// The patch size scoring runs at; 0 = twice the base patch (paper: 32 for base 16).
    pub score_patch: usize,
    /// Fraction of each trained batch encoded at `score_patch` (paper: ½).
    pub low_res_fraction: f64,
}

impl Default for FlexiConfig {
    fn default() -> Self {
        Self {
            score_patch: 0,
            low_res_fraction: 0.5,
        }
    }
}

/// Where samples come from and how they become tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub loader: LoaderOptions,
    pub decode: DecodeOptions,
    /// A `tokenizer.json`; empty = train a byte-level BPE on the first `tokenizer_captions`
    /// captions of the training data (saved as `tokenizer.json` in the run).
    pub tokenizer: String,
    pub tokenizer_vocab: usize,
    pub tokenizer_captions: usize,
    /// MiB of decoded training examples kept in memory, so that a pool read many times is decoded
    /// once (`input::cached_work`; exact). A 32-px example is about 3.3 KB (20,000 of them: 66
    /// MiB), a 224-px one 150 KB. 0 = off. Written only when not the default.
    #[serde(skip_serializing_if = "is_default_cache")]
    pub decoded_cache_mib: usize,
}

const DEFAULT_DECODED_CACHE_MIB: usize = 1024;

fn is_default_cache(n: &usize) -> bool {
    *n == DEFAULT_DECODED_CACHE_MIB
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            loader: LoaderOptions::default(),
            decode: DecodeOptions::default(),
            tokenizer: String::new(),
            tokenizer_vocab: 1024,
            tokenizer_captions: 20_000,
            decoded_cache_mib: DEFAULT_DECODED_CACHE_MIB,
        }
    }
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub method: TrainMethod,
    pub score: ScoreKind,
    /// b, examples trained per step.
    pub batch: usize,
    /// f: each scored step draws B = b / (1 − f) examples (integers: B = ⌈b / (1 − f)⌉).
    pub filter_ratio: f64,
    /// N, chunks of joint selection (paper: 16).
    pub chunks: usize,
    /// Scores are multiplied by the gain before sampling (paper: 100).
    pub gain: f64,
    pub steps: usize,
    pub seed: u64,
    pub flexi: FlexiConfig,
    pub optim: OptimConfig,
    pub data: DataConfig,
    /// Metrics cadence, in steps (the first and last steps are always logged).
    pub log_every: usize,
    /// Checkpoint cadence, in steps (0 = only at the end).
    pub checkpoint_every: usize,
    /// Checkpoints kept on disk (the newest).
    pub keep_checkpoints: usize,
    /// Evaluation cadence in steps when the run has an eval set (0 = before the first step and
    /// after the last only).
    #[serde(default)]
    pub eval_every: usize,
    /// Arithmetic of the forward passes (training, scoring, evaluation): f32 or bf16 autocast.
    /// Written only when not f32, so an f32 run's `config.json` reads as it did before this setting
    /// existed.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Selection quotas: the super-batch as G equal groups, every chunk taking the same share of
    /// each (docs/ALGORITHM.md §4), each group drawn from its own share of the shards and encoded
    /// on its own — the single-process twin of a G-rank data-parallel run, which sets it to the
    /// world size (a multiple of it is allowed: each rank then holds several groups). Written
    /// only when not 1, so other runs' `config.json` (and experiment keys) read as before.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub selection_groups: usize,
    /// Arithmetic of the scoring forward (the learner's and an online reference's embeddings of
    /// the super-batch): `auto` (bf16 on CUDA, whose tensor cores make it fast, else `precision`),
    /// `f32` or `bf16`. Scores feed a sampler, not gradients; BENCHMARKS.md ("Scoring a
    /// super-batch") checks that bf16 scores select as f32's do. Written only when not `auto`.
    #[serde(default, skip_serializing_if = "ScorePrecision::is_auto")]
    pub score_precision: ScorePrecision,
    /// Weight w of distillation from the reference on the trained batch (docs/ALGORITHM.md §9,
    /// ACED): the loss becomes sigmoid loss + w · KD(learner ‖ reference), the KD matching the
    /// sigmoid loss pair by pair. 0 = off (the default). Needs a reference, cached or online.
    /// Written only when not 0, so other runs' `config.json` (and experiment keys) read as before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub distill: f64,
}

fn is_zero(w: &f64) -> bool {
    *w == 0.0
}

/// [`TrainConfig::score_precision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScorePrecision {
    #[default]
    Auto,
    F32,
    Bf16,
}

impl ScorePrecision {
    pub fn is_auto(&self) -> bool {
        *self == ScorePrecision::Auto
    }
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl TrainConfig {
    /// The preset `name` (a model preset: tiny, small, b16) with the paper's training defaults.
    pub fn preset(name: &str) -> Result<Self> {
        let model = ModelConfig::preset(name)?;
        let batch = match name {
            "b16" => 4096,
            _ => 256,
        };
        let mut data = DataConfig::default();
        data.loader.shuffle_buffer = 4096;
        Ok(Self {
            model,
            method: TrainMethod::Uniform,
            score: ScoreKind::Learnability,
            batch,
            filter_ratio: 0.8,
            chunks: 16,
            gain: 100.0,
            steps: 1000,
            seed: 0,
            flexi: FlexiConfig::default(),
            optim: OptimConfig::default(),
            data,
            log_every: 10,
            checkpoint_every: 500,
            keep_checkpoints: 2,
            eval_every: 0,
            precision: Precision::F32,
            selection_groups: 1,
            score_precision: ScorePrecision::Auto,
            distill: 0.0,
        })
    }

    /// B, the examples drawn per step: b for uniform training, ⌈b / (1 − f)⌉ when scoring,
    /// computed in integers from f's decimal digits ([`crate::select::super_batch_for`]). Call on a
    /// validated config: an f that is out of range or has too many decimals panics here.
    pub fn super_batch(&self) -> usize {
        if !self.method.scores() {
            return self.batch;
        }
        crate::select::super_batch_for(self.batch, self.filter_ratio)
            .expect("filter_ratio checked by validate()")
    }

    /// The precision scoring runs in on `device` ([`Self::score_precision`] resolved).
    pub fn scoring_precision(&self, device: tch::Device) -> Precision {
        match self.score_precision {
            ScorePrecision::Auto if device.is_cuda() => Precision::Bf16,
            ScorePrecision::Auto => self.precision,
            ScorePrecision::F32 => Precision::F32,
            ScorePrecision::Bf16 => Precision::Bf16,
        }
    }

    /// Whether a step reads the reference: to score with it, or to distil from it.
    pub fn needs_reference(&self) -> bool {
        (self.method.scores() && self.score.needs_reference()) || self.distill > 0.0
    }

    /// Whether the reference's embeddings of the super-batch come with the scoring (so
    /// distillation reuses them) rather than for the trained rows alone.
    pub fn scores_reference(&self) -> bool {
        self.method.scores() && self.score.needs_reference()
    }

    /// The patch size scoring runs the image tower at.
    pub fn score_patch(&self) -> usize {
        match self.method {
            TrainMethod::FlexiJest if self.flexi.score_patch == 0 => {
                2 * self.model.image.patch_size
            }
            TrainMethod::FlexiJest => self.flexi.score_patch,
            _ => self.model.image.patch_size,
        }
    }

    /// The (rows, patch) parts a trained batch of b is split into.
    pub fn train_parts(&self) -> Vec<(usize, usize)> {
        let base = self.model.image.patch_size;
        match self.method {
            TrainMethod::FlexiJest => {
                let low = ((self.batch as f64) * self.flexi.low_res_fraction).round() as usize;
                vec![(self.batch - low, base), (low, self.score_patch())]
            }
            _ => vec![(self.batch, base)],
        }
    }

    /// The parts of one group's (one rank's) share of the trained batch: [`Self::train_parts`]
    /// with every part's rows divided by `selection_groups` (validated to divide them).
    pub fn group_parts(&self) -> Vec<(usize, usize)> {
        let groups = self.selection_groups.max(1);
        self.train_parts()
            .into_iter()
            .map(|(rows, patch)| (rows / groups, patch))
            .collect()
    }

    /// Checks everything once, before a run starts.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::invalid("train config", what));
        self.model.validate()?;
        if self.batch < 2 {
            return bad(format!(
                "batch {} must be ≥ 2 (a contrastive batch needs negatives)",
                self.batch
            ));
        }
        if self.steps == 0 {
            return bad("steps is 0".into());
        }
        if self.method.scores() {
            // In [0, 1) with at most 18 decimals, so that B is exact.
            crate::select::super_batch_for(self.batch, self.filter_ratio)?;
            if self.chunks == 0 || self.chunks > self.batch {
                return bad(format!(
                    "chunks {} must be in 1..={}",
                    self.chunks, self.batch
                ));
            }
            let groups = self.selection_groups;
            if groups > 0 && self.chunks > self.batch / groups {
                return bad(format!(
                    "chunks {} must be ≤ b / selection_groups = {}",
                    self.chunks,
                    self.batch / groups
                ));
            }
            if !self.gain.is_finite() || self.gain < 0.0 {
                return bad(format!("gain {} must be finite and ≥ 0", self.gain));
            }
        }
        let groups = self.selection_groups;
        let big = self.super_batch();
        if groups == 0
            || !big.is_multiple_of(groups)
            || self
                .train_parts()
                .iter()
                .any(|p| !p.0.is_multiple_of(groups))
        {
            return bad(format!(
                "selection_groups {groups} must divide the super-batch B = {big} and each part of \
                 the batch ({:?} rows at each resolution); a data-parallel run sets it to the world \
                 size, so b and B must be multiples of the number of processes",
                self.train_parts().iter().map(|p| p.0).collect::<Vec<_>>()
            ));
        }
        if self.method == TrainMethod::FlexiJest {
            self.model.check_patch(self.score_patch())?;
            if !(0.0..=1.0).contains(&self.flexi.low_res_fraction) {
                return bad(format!(
                    "flexi.low_res_fraction {} must be in [0, 1]",
                    self.flexi.low_res_fraction
                ));
            }
        }
        let o = &self.optim;
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return bad(format!("optim.lr {} must be positive", o.lr));
        }
        if !(0.0..1.0).contains(&o.warmup_fraction) {
            return bad(format!(
                "optim.warmup_fraction {} must be in [0, 1)",
                o.warmup_fraction
            ));
        }
        if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) {
            return bad(format!(
                "optim.beta1 {} and beta2 {} must be in [0, 1)",
                o.beta1, o.beta2
            ));
        }
        if o.weight_decay < 0.0 || o.clip_norm < 0.0 || o.eps <= 0.0 {
            return bad("optim.weight_decay and clip_norm must be ≥ 0 and eps > 0".into());
        }
        if !(self.distill.is_finite() && self.distill >= 0.0) {
            return bad(format!(
                "distill {} must be finite and ≥ 0 (0 = no distillation)",
                self.distill
            ));
        }
        if self.log_every == 0 {
            return bad("log_every is 0; use 1 to log every step".into());
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints is 0; at least the newest is kept".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_is_written_only_when_not_f32_and_round_trips() {
        let mut config = TrainConfig::preset("tiny").unwrap();
        let f32_json = serde_json::to_value(&config).unwrap();
        assert!(f32_json.get("precision").is_none(), "{f32_json}");
        config.precision = Precision::Bf16;
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains(r#""precision":"bf16""#), "{json}");
        let back: TrainConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.precision, Precision::Bf16);
        let old: TrainConfig = serde_json::from_value(f32_json).unwrap();
        assert_eq!(old.precision, Precision::F32);
    }
}
