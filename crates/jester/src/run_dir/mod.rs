//! A run folder: everything one training run reads and writes, so that resuming, evaluating,
//! embedding or comparing a run needs only its folder (docs/ARCHITECTURE.md, "The run folder").
//!
//! ```text
//! OUT/config.json        the resolved TrainConfig           OUT/inputs.json    shards, reference, eval set
//! OUT/tokenizer.json     the tokenizer the text tower reads OUT/metrics.jsonl  a StepLine per logged step
//! OUT/eval.jsonl         an EvalLine per evaluation         OUT/summary.json   the TrainSummary of a finished run
//! OUT/checkpoints/step-NNNNNNNNN/  model, optimizer, state  OUT/model.safetensors  the final weights
//! ```
//! Every file is written atomically ([`jester_data::atomic`]); JSONL files are cut back to the
//! resumed checkpoint's step.
mod checkpoint;
mod claim;
mod dir;
mod inputs;
mod records;
mod trained;

pub use crate::eval::EvalSpec;
pub use checkpoint::{latest_checkpoint, read_state, save_checkpoint, RunState};
pub use claim::Claim;
pub use dir::{save_model_atomic, RunDir};
pub use inputs::{ReferenceSource, RunInputs};
pub use records::{EvalLine, ScoreSummary, StepLine, TrainSummary, Update};
pub use trained::{load_trained, TrainedModel, Unfinished};
