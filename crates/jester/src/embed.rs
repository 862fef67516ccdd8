//! `jester embed`: a trained model's image and text embeddings (with its t and b) for a whole
//! shard set, keyed by sample key and streamed to disk (docs/ALGORITHM.md §6: the reference is cached as
//! embeddings, never as scores, because scores depend on which examples share a batch).
use std::path::Path;

use serde::Serialize;

use jester_data::SkipCounts;

use crate::cache::EmbeddingWriter;
use crate::error::Result;
use crate::input::{assemble, file_order_loader};
use crate::lock::Lock;
use crate::provenance::Provenance;
use crate::run_dir::TrainedModel;

/// What an embedding pass wrote.
#[derive(Clone, Debug, Serialize)]
pub struct EmbedSummary {
    pub samples: usize,
    pub dim: usize,
    pub t: f64,
    pub b: f64,
    pub skipped: SkipCounts,
}

/// Embeds every sample of `data` once, in file order, `batch` at a time, into `out`
/// (the layout of [`crate::cache`]); `progress` sees the running sample count.
pub fn embed_shards(
    trained: &TrainedModel,
    data: &[String],
    out: &Path,
    batch: usize,
    workers: usize,
    mut progress: impl FnMut(usize),
) -> Result<EmbedSummary> {
    // Two embeds into one file would interleave their temporary files.
    let _lock = Lock::beside(out, "the embedding cache")?;
    let config = &trained.config;
    let shards = jester_data::expand_shards(data)?;
    let provenance = Provenance::compute(
        &shards,
        &trained.weights,
        &trained.run.join("tokenizer.json"),
        trained.checkpoint_step,
    )?;
    let mut loader = file_order_loader(
        data,
        config,
        &trained.tokenizer,
        workers,
        (2 * batch).max(64),
    )?;
    let mut writer = EmbeddingWriter::create(out)?;
    let model = &trained.model;
    let patch = config.model.image.patch_size;
    loop {
        let examples = loader.next_batch(batch.max(1))?;
        if examples.is_empty() {
            break;
        }
        let drawn = assemble(examples, model.device());
        let embeddings = model.embed(&drawn.tensors, patch)?;
        writer.append(&drawn.keys, embeddings.image(), embeddings.text())?;
        progress(writer.len());
    }
    let (t, b) = {
        let _guard = tch::no_grad_guard();
        (
            model.temperature().double_value(&[]),
            model.bias().double_value(&[]),
        )
    };
    let samples = writer.len();
    writer.finish(t, b, Some(&provenance))?;
    Ok(EmbedSummary {
        samples,
        dim: config.model.embed_dim,
        t,
        b,
        skipped: loader.skipped().clone(),
    })
}
