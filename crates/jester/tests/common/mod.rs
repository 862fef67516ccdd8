//! Inputs shared by the integration tests.
#![allow(dead_code)]
use jester::loss::LossKind;
use jester::select::{Method, ScoreKind, SelectConfig};
use jester::PairEmbeddings;
use jester_data::synthetic_embeddings::{generate, ClusteredConfig, ModelEmbeddings};
use tch::{Kind, Tensor};

/// Learner and reference embeddings of a clustered super-batch (see `jester_data`).
pub fn clustered(config: &ClusteredConfig, kind: Kind) -> (PairEmbeddings, PairEmbeddings) {
    let e = generate(config).expect("valid config");
    let pair = |m: &ModelEmbeddings| {
        let shape = [e.examples as i64, e.dim as i64];
        let image = Tensor::from_slice(&m.image).reshape(shape).to_kind(kind);
        let text = Tensor::from_slice(&m.text).reshape(shape).to_kind(kind);
        PairEmbeddings::new(image, text, m.t as f64, m.b as f64).expect("valid embeddings")
    };
    (pair(&e.learner), pair(&e.reference))
}

pub fn small(examples: usize, dim: usize, clusters: usize, seed: u64) -> ClusteredConfig {
    ClusteredConfig {
        examples,
        dim,
        clusters,
        seed,
        ..Default::default()
    }
}

/// A selection configuration with every knob the selection tests vary given explicitly.
pub fn config(
    score: ScoreKind,
    loss: LossKind,
    chunks: usize,
    gain: f64,
    seed: u64,
) -> SelectConfig {
    SelectConfig {
        method: Method::Joint,
        score,
        loss,
        chunks,
        gain,
        seed,
    }
}
