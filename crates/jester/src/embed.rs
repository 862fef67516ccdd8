//! `jester embed`: a trained model's image and text embeddings (with its t and b) for a whole
//! shard set, keyed by sample key and streamed to disk (docs/ALGORITHM.md §6: the reference is cached as
//! embeddings, never as scores, because scores depend on which examples share a batch).
use std::path::Path;

use serde::Serialize;

use jester_data::SkipCounts;

use crate::cache::EmbeddingWriter;
use crate::collective::{all_gather_json, all_ok, Collective};
use crate::error::Result;
use crate::input::{assemble, file_order_loader, model_preprocess};
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
///
/// Data-parallel (`collective` spanning W processes): each rank embeds its share of the shards
/// ([`jester_data::Share`]); round by round, rank 0 gathers every rank's batch and appends it to the
/// one cache it writes. The cache holds the same keys and embeddings as a one-process pass (rows
/// in another order; lookups go by key).
pub fn embed_shards(
    trained: &TrainedModel,
    data: &[String],
    out: &Path,
    batch: usize,
    workers: usize,
    collective: &dyn Collective,
    mut progress: impl FnMut(usize),
) -> Result<EmbedSummary> {
    let lead = collective.rank() == 0;
    let config = &trained.config;
    // Two embeds into one file would interleave their temporary files.
    let prepared: Result<Option<(Lock, Provenance, EmbeddingWriter)>> = if lead {
        (|| {
            let lock = Lock::beside(out, "the embedding cache")?;
            let shards = jester_data::expand_shards(data)?;
            let provenance = Provenance::compute(
                &shards,
                &trained.weights,
                &trained.run.join("tokenizer.json"),
                trained.checkpoint_step,
            )?;
            Ok(Some((lock, provenance, EmbeddingWriter::create(out)?)))
        })()
    } else {
        Ok(None)
    };
    // A rank that cannot start (rank 0's locked or unwritable output, anyone's unreadable
    // shards) stops every rank, saying which.
    let share = jester_data::Share::new(collective.rank(), collective.world_size())?;
    let loader = file_order_loader(
        data,
        config,
        &trained.tokenizer,
        workers,
        (2 * batch).max(64),
        share,
    );
    let (mut prepared, mut loader) =
        all_ok(collective, prepared.and_then(|p| loader.map(|l| (p, l))))?;
    let model = &trained.model;
    let patch = config.model.image.patch_size;
    let mut written = 0;
    loop {
        let examples = loader.next_batch(batch.max(1))?;
        let keys: Vec<String> = examples.iter().map(|e| e.key.clone()).collect();
        let all_keys: Vec<String> = all_gather_json(collective, keys)?.concat();
        if all_keys.is_empty() {
            break;
        }
        let (image, text) = if examples.is_empty() {
            let d = config.model.embed_dim as i64;
            let empty = || tch::Tensor::zeros([0, d], (tch::Kind::Float, model.device()));
            (empty(), empty())
        } else {
            let drawn = assemble(examples, &model_preprocess(config), model.device());
            let embeddings = model.embed(&drawn.tensors, patch)?;
            (
                embeddings.image().shallow_clone(),
                embeddings.text().shallow_clone(),
            )
        };
        let image = collective.gather_rows(&image)?;
        let text = collective.gather_rows(&text)?;
        if let Some((_, _, writer)) = &mut prepared {
            writer.append(&all_keys, &image, &text)?;
        }
        written += all_keys.len();
        progress(written);
    }
    let mut skipped = SkipCounts::default();
    for counts in all_gather_json(collective, loader.skipped().clone())? {
        skipped.merge(&counts);
    }
    let (t, b) = {
        let _guard = tch::no_grad_guard();
        (
            model.temperature().double_value(&[]),
            model.bias().double_value(&[]),
        )
    };
    if let Some((_lock, provenance, writer)) = prepared {
        writer.finish(t, b, Some(&provenance))?;
    }
    // No rank reports success before rank 0 has written the cache.
    collective.barrier()?;
    Ok(EmbedSummary {
        samples: written,
        dim: config.model.embed_dim,
        t,
        b,
        skipped,
    })
}
