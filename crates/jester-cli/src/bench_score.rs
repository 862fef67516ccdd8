//! `jester bench score`: the scoring forward over one super-batch, timed side by side as it ran
//! before (autograd off with `no_grad`) and as it runs now (inference mode), in f32 and bf16; and
//! whether bf16 scores select as f32 scores do — the selected batch's mean learnability (always
//! measured with f32 embeddings) with f32 and bf16 scoring over the same super-batches and seeds,
//! against the spread f32 selections have across seeds.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use tch::Tensor;

use jester::embeddings::PairEmbeddings;
use jester::input::{assemble, file_order_loader, model_preprocess};
use jester::loss::LossKind;
use jester::model::{Precision, TwoTower, EMBED_CHUNK};
use jester::run_dir::{load_trained, Unfinished};
use jester::select::{
    batch_score, select_grouped, uniform_batch_score, Method, ScoreKind, SelectConfig,
};

use crate::measure::sync;
use crate::output::write_json;
use crate::select::parse_device;

#[derive(Args)]
pub struct ScoreBench {
    /// The learner: a run folder (e.g. a demo's `runs/jest-…`).
    #[arg(long)]
    learner: PathBuf,
    /// The reference: a run folder reading the same inputs.
    #[arg(long)]
    reference: PathBuf,
    /// Shards to draw super-batches from (file order).
    #[arg(long, required = true)]
    data: Vec<String>,
    /// b; B follows from the learner's filter ratio.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Super-batches scored.
    #[arg(long, default_value_t = 8)]
    super_batches: usize,
    /// Selection seeds per super-batch (the noise floor of the comparison).
    #[arg(long, default_value_t = 8)]
    seeds: u64,
    /// Timed repetitions of each way of scoring (interleaved, after one warm-up each).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    device: String,
    threads: i32,
    batch: usize,
    super_batch: usize,
    /// Median seconds to embed one super-batch with the learner, by way of scoring.
    seconds: Vec<(String, f64)>,
    /// Mean learnability of the selected batch (f32 embeddings), mean over super-batches and seeds.
    learnability_f32: f64,
    learnability_bf16: f64,
    learnability_uniform: f64,
    /// Standard deviation over seeds of f32 selections' mean learnability (averaged over
    /// super-batches): the noise floor of the comparison.
    seed_spread_f32: f64,
    /// Mean fraction of the f32 selection the bf16 one shares (same seed), and of two f32
    /// selections with different seeds.
    overlap_bf16_vs_f32: f64,
    overlap_f32_other_seed: f64,
    /// Largest |bf16 − f32| of the learner's embeddings (unit vectors).
    max_embedding_error: f64,
}

pub fn run(args: ScoreBench) -> Result<()> {
    let device = parse_device(&args.device)?;
    let learner = load_trained(&args.learner, device, Unfinished::Refuse)?;
    let reference = load_trained(&args.reference, device, Unfinished::Refuse)?;
    let config = learner.config.clone();
    let big = jester::select::super_batch_for(args.batch, config.filter_ratio)?;
    let patch = config.model.image.patch_size;
    let loader = file_order_loader(
        &args.data,
        &config,
        &learner.tokenizer,
        2,
        1024,
        jester_data::Share::WHOLE,
    )?;
    let mut examples = loader.take(big * args.super_batches);
    // The reference reads captions with its own tokenizer: a second loader over the same shards
    // in file order, so the i-th example is the same sample for both (checked by key).
    let reference_loader = file_order_loader(
        &args.data,
        &reference.config,
        &reference.tokenizer,
        2,
        1024,
        jester_data::Share::WHOLE,
    )?;
    let mut reference_examples = reference_loader.take(big * args.super_batches);
    let mut ways: Vec<(String, Vec<f64>)> =
        ["no_grad f32 (before)", "inference f32", "inference bf16"]
            .iter()
            .map(|w| (w.to_string(), Vec::new()))
            .collect();
    let (mut f32_sum, mut bf16_sum, mut uniform_sum, mut spread_sum) = (0.0, 0.0, 0.0, 0.0);
    let (mut overlap_bf16, mut overlap_seed, mut max_error) = (0.0, 0.0, 0.0f64);
    let mut count = 0.0;
    for _ in 0..args.super_batches {
        let batch: Vec<_> = examples
            .by_ref()
            .take(big)
            .collect::<std::result::Result<_, _>>()?;
        if batch.len() < big {
            bail!(
                "{:?} holds fewer than {} × {big} samples",
                args.data,
                args.super_batches
            );
        }
        let theirs: Vec<_> = reference_examples
            .by_ref()
            .take(big)
            .collect::<std::result::Result<_, _>>()?;
        if theirs.len() != batch.len() || theirs.iter().zip(&batch).any(|(a, b)| a.key != b.key) {
            bail!("the learner's and the reference's loaders disagree on the samples");
        }
        let reference_drawn = assemble(theirs, &model_preprocess(&reference.config), device);
        let drawn = assemble(batch, &model_preprocess(&config), device);
        let tensors = &drawn.tensors;
        // Timing: each way once to warm up, then interleaved repetitions.
        let run_way = |way: usize| -> Result<PairEmbeddings> {
            Ok(match way {
                0 => no_grad_embed(&learner.model, tensors, patch)?,
                1 => learner.model.embed_in(tensors, patch, Precision::F32)?,
                _ => learner.model.embed_in(tensors, patch, Precision::Bf16)?,
            })
        };
        for way in 0..3 {
            run_way(way)?;
        }
        for _ in 0..args.repeats {
            for (way, (_, times)) in ways.iter_mut().enumerate() {
                sync(device);
                let start = Instant::now();
                let _ = run_way(way)?;
                sync(device);
                times.push(start.elapsed().as_secs_f64());
            }
        }
        // Selection quality.
        let f32_learner = run_way(1)?;
        let bf16_learner = run_way(2)?;
        let theirs = &reference_drawn.tensors;
        let reference_patch = reference.config.model.image.patch_size;
        let f32_reference = reference
            .model
            .embed_in(theirs, reference_patch, Precision::F32)?;
        let bf16_reference = reference
            .model
            .embed_in(theirs, reference_patch, Precision::Bf16)?;
        max_error = max_error.max(
            (f32_learner.image() - bf16_learner.image())
                .abs()
                .max()
                .double_value(&[]),
        );
        let score = |index: &[i64]| -> Result<f64> {
            let index = Tensor::from_slice(index).to_device(device);
            Ok(batch_score(
                ScoreKind::Learnability,
                LossKind::Sigmoid,
                &f32_learner,
                Some(&f32_reference),
                &index,
                1024,
            )?)
        };
        let mut f32_scores = Vec::new();
        let mut previous: Option<Vec<i64>> = None;
        for seed in 0..args.seeds {
            let select = SelectConfig {
                method: Method::Joint,
                score: ScoreKind::Learnability,
                loss: LossKind::Sigmoid,
                chunks: config.chunks,
                gain: config.gain,
                seed,
            };
            let with_f32 =
                select_grouped(&f32_learner, Some(&f32_reference), args.batch, &select, 1)?.indices;
            let with_bf16 =
                select_grouped(&bf16_learner, Some(&bf16_reference), args.batch, &select, 1)?
                    .indices;
            let s32 = score(&with_f32)?;
            f32_scores.push(s32);
            f32_sum += s32;
            bf16_sum += score(&with_bf16)?;
            overlap_bf16 += overlap(&with_f32, &with_bf16);
            if let Some(previous) = &previous {
                overlap_seed += overlap(previous, &with_f32);
            }
            previous = Some(with_f32);
            count += 1.0;
        }
        uniform_sum += uniform_batch_score(
            ScoreKind::Learnability,
            LossKind::Sigmoid,
            &f32_learner,
            Some(&f32_reference),
            args.batch,
            1024,
        )? * args.seeds as f64;
        let mean = f32_scores.iter().sum::<f64>() / f32_scores.len() as f64;
        let var = f32_scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>()
            / (f32_scores.len() as f64 - 1.0).max(1.0);
        spread_sum += var.sqrt();
    }
    let median = |times: &[f64]| {
        let mut t = times.to_vec();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let n = args.super_batches as f64;
    let report = Report {
        device: format!("{device:?}"),
        threads: tch::get_num_threads(),
        batch: args.batch,
        super_batch: big,
        seconds: ways.iter().map(|(w, t)| (w.clone(), median(t))).collect(),
        learnability_f32: f32_sum / count,
        learnability_bf16: bf16_sum / count,
        learnability_uniform: uniform_sum / count,
        seed_spread_f32: spread_sum / n,
        overlap_bf16_vs_f32: overlap_bf16 / count,
        overlap_f32_other_seed: overlap_seed / (count - n).max(1.0),
        max_embedding_error: max_error,
    };
    let before = report.seconds[0].1;
    println!(
        "| scoring forward, B = {} | s / super-batch (median) | vs before |",
        big
    );
    println!("|---|---|---|");
    for (way, s) in &report.seconds {
        println!("| {way} | {s:.4} | {:.2}× |", before / s);
    }
    println!(
        "\nselected batch's mean learnability (f32 embeddings): f32 scoring {:.4}, bf16 scoring {:.4}, \
         uniform {:.4}; f32 spread over seeds {:.4}; overlap bf16/f32 (same seed) {:.1}%, f32/f32 \
         (other seed) {:.1}%; max |Δ| of unit embeddings {:.2e}",
        report.learnability_f32,
        report.learnability_bf16,
        report.learnability_uniform,
        report.seed_spread_f32,
        100.0 * report.overlap_bf16_vs_f32,
        100.0 * report.overlap_f32_other_seed,
        report.max_embedding_error
    );
    if let Some(out) = &args.out {
        write_json(out, &report)?;
    }
    Ok(())
}

/// The scoring forward as it ran before inference mode: autograd's graph off (`no_grad`), version
/// counters and view tracking still kept; same chunking as `TwoTower::embed`.
fn no_grad_embed(
    model: &TwoTower,
    batch: &jester::model::BatchTensors,
    patch: usize,
) -> Result<PairEmbeddings> {
    let _guard = tch::no_grad_guard();
    let (mut images, mut texts) = (Vec::new(), Vec::new());
    for start in (0..batch.len()).step_by(EMBED_CHUNK) {
        let part = batch.narrow(start, (start + EMBED_CHUNK).min(batch.len()));
        images.push(model.encode_images(&part.images, patch)?);
        texts.push(model.encode_texts(&part.ids, &part.last)?);
    }
    Ok(PairEmbeddings::new(
        Tensor::cat(&images, 0),
        Tensor::cat(&texts, 0),
        model.temperature().double_value(&[]),
        model.bias().double_value(&[]),
    )?)
}

fn overlap(a: &[i64], b: &[i64]) -> f64 {
    let set: std::collections::HashSet<_> = a.iter().collect();
    b.iter().filter(|i| set.contains(i)).count() as f64 / a.len() as f64
}
