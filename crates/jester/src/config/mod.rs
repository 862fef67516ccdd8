//! The training run's typed config (docs/ARCHITECTURE.md): one struct for every method, from a
//! preset or a TOML file and `key=value` settings, validated once, written resolved into the run.
mod settings;
mod train;

pub use settings::with_overrides;
pub use train::{DataConfig, FlexiConfig, OptimConfig, ScorePrecision, TrainConfig, TrainMethod};
