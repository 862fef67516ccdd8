//! jester: JEST (joint example selection, Evans et al. 2024, arXiv:2406.17711) for image-text
//! contrastive learning, on libtorch. The pipeline, module by module (docs/ARCHITECTURE.md):
//!
//! ```text
//! config     TrainConfig: preset or TOML, `key=value` settings, validated once
//! input      shards → Example (decode, preprocess, tokenise) → BatchTensors on the device
//! model      the two towers (ViT at any patch size, text transformer) and their sigmoid loss
//! select     learnability scores (learner − reference) → joint selection, chunk by chunk
//! train      Step: draw B → score → select b → AdamW update; `train` loops it (Collective: many processes)
//! run_dir    a run's folder: config, inputs, tokenizer, checkpoints, metrics, summary, trained model
//! eval, embed, cache   held-out metrics; a trained model's embeddings, cached as a reference
//! experiment recipe → runs → iterations/FLOPs to target → report
//! ```
//! CUDA is used when libtorch sees a GPU ([`default_device`]), the CPU otherwise, with one build.
pub mod cache;
pub mod collective;
pub mod config;
pub mod embed;
pub mod embeddings;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod flops;
pub mod input;
pub mod io;
pub mod lock;
pub mod loss;
pub mod model;
pub mod provenance;
pub mod run_dir;
pub mod select;
pub mod train;

pub use embeddings::PairEmbeddings;
pub use error::{Error, Result};

/// CUDA if libtorch sees a GPU, else the CPU.
pub fn default_device() -> tch::Device {
    tch::Device::cuda_if_available()
}

/// A device named as the command line and the Python package take it: `auto` (CUDA if libtorch
/// sees a GPU), `cpu`, `cuda` (or `gpu`: the first GPU) or `cuda:N`. The error (without the name
/// of the argument, which the caller adds) says what is accepted or how many GPUs there are.
pub fn parse_device(name: &str) -> std::result::Result<tch::Device, String> {
    let index = match name {
        "auto" => return Ok(default_device()),
        "cpu" => return Ok(tch::Device::Cpu),
        "cuda" | "gpu" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => i,
            _ => return Err(format!("{name:?}: expected auto, cpu, cuda or cuda:N")),
        },
    };
    let count = tch::Cuda::device_count() as usize;
    if index >= count {
        return Err(format!(
            "{name:?}: libtorch sees {count} CUDA device(s); use cpu or auto"
        ));
    }
    Ok(tch::Device::Cuda(index))
}

#[cfg(test)]
mod tests {
    #[test]
    fn devices_are_named_one_way_for_the_cli_and_python() {
        assert_eq!(super::parse_device("cpu"), Ok(tch::Device::Cpu));
        let err = super::parse_device("tpu").unwrap_err();
        assert_eq!(err, "\"tpu\": expected auto, cpu, cuda or cuda:N");
        let gpus = tch::Cuda::device_count();
        let beyond = format!("cuda:{gpus}");
        let err = super::parse_device(&beyond).unwrap_err();
        assert!(
            err.contains(&format!("libtorch sees {gpus} CUDA device(s)")),
            "{err}"
        );
    }
}
