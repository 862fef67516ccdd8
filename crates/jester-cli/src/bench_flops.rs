//! `jester bench flops`: where an iteration's FLOPs go, by phase, tower and resolution, for each
//! preset and method (docs/ALGORITHM.md §6) — the prediction `jester bench train` measures
//! against. No model is built: the counts are analytic.
use anyhow::Result;
use clap::Args;
use serde::Serialize;

use jester::config::{TrainConfig, TrainMethod};
use jester::flops::{self, Part};

use crate::output::write_json;

#[derive(Args)]
pub struct FlopsBench {
    /// Presets (or TOML files), as `jester train --config`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tiny,tiny-hires,small,b16"
    )]
    configs: Vec<String>,
    /// Settings applied to every preset (e.g. batch=64 filter_ratio=0.9).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct PresetRow {
    config: String,
    /// The resolved model (towers' shapes), so tools build the same model elsewhere.
    model: jester::model::ModelConfig,
    batch: usize,
    super_batch: usize,
    image_tokens: usize,
    flexi_image_tokens: usize,
    text_tokens: usize,
    /// Forward FLOPs per example: image at the training and at Flexi-JEST's scoring patch, text.
    image_forward: f64,
    flexi_image_forward: f64,
    text_forward: f64,
    /// A: Flexi-JEST's scoring forward over a full one.
    approximation: f64,
    /// The text tower's share of Flexi-JEST's scoring forward.
    text_share_of_flexi_scoring: f64,
    /// Per-iteration FLOPs as executed, relative to uniform.
    cost_jest: f64,
    cost_flexi_jest: f64,
    /// Every term of each method's iteration.
    parts: Vec<(String, Vec<Part>)>,
}

pub fn run(args: FlopsBench) -> Result<()> {
    let mut rows = Vec::new();
    for name in &args.configs {
        let base = TrainConfig::load(name, &args.set)?;
        let m = &base.model;
        let patch = m.image.patch_size;
        let mut flexi = base.clone();
        flexi.method = TrainMethod::FlexiJest;
        let low = flexi.score_patch();
        let tokens = |p: usize| (m.image.image_size / p).pow(2);
        let image = flops::image_forward(&m.image, m.embed_dim, patch);
        let image_low = flops::image_forward(&m.image, m.embed_dim, low);
        let text = flops::text_forward(&m.text, m.embed_dim);
        let total = |method: TrainMethod| -> (f64, Vec<Part>) {
            let mut config = base.clone();
            config.method = method;
            let parts = flops::per_iteration(&config, None);
            (parts.iter().map(|p| p.flops).sum(), parts)
        };
        let (uniform, uniform_parts) = total(TrainMethod::Uniform);
        let (jest, jest_parts) = total(TrainMethod::Jest);
        let (flexi_total, flexi_parts) = total(TrainMethod::FlexiJest);
        rows.push(PresetRow {
            config: name.clone(),
            model: m.clone(),
            batch: base.batch,
            super_batch: flexi.super_batch(),
            image_tokens: tokens(patch),
            flexi_image_tokens: tokens(low),
            text_tokens: m.text.context_length,
            image_forward: image,
            flexi_image_forward: image_low,
            text_forward: text,
            approximation: (image_low + text) / (image + text),
            text_share_of_flexi_scoring: text / (image_low + text),
            cost_jest: jest / uniform,
            cost_flexi_jest: flexi_total / uniform,
            parts: vec![
                ("uniform".into(), uniform_parts),
                ("jest".into(), jest_parts),
                ("flexi-jest".into(), flexi_parts),
            ],
        });
    }
    print_tables(&rows);
    if let Some(out) = &args.out {
        write_json(out, &rows)?;
    }
    Ok(())
}

fn print_tables(rows: &[PresetRow]) {
    let m = |f: f64| f / 1e6;
    println!(
        "| preset | b / B | image tokens (scoring at 2× patch) | text tokens | image fwd MFLOP/ex (flexi) | text fwd MFLOP/ex | text share of a flexi scoring fwd | A | JEST cost/iter | Flexi-JEST cost/iter |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} / {} | {} ({}) | {} | {:.2} ({:.2}) | {:.2} | {:.0}% | {:.2} | {:.2}× | {:.2}× |",
            r.config,
            r.batch,
            r.super_batch,
            r.image_tokens,
            r.flexi_image_tokens,
            r.text_tokens,
            m(r.image_forward),
            m(r.flexi_image_forward),
            m(r.text_forward),
            100.0 * r.text_share_of_flexi_scoring,
            r.approximation,
            r.cost_jest,
            r.cost_flexi_jest,
        );
    }
    println!("\nFlexi-JEST's iteration by term, % of its FLOPs:\n");
    println!("| preset | train image (full / low res) | train text | train loss | score image (low res) | score text | selection |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let parts = &r
            .parts
            .iter()
            .find(|(m, _)| m == "flexi-jest")
            .expect("made above")
            .1;
        let total: f64 = parts.iter().map(|p| p.flops).sum();
        let share = |phase: &str, tower: &str| -> Vec<f64> {
            parts
                .iter()
                .filter(|p| p.phase == phase && p.tower == tower)
                .map(|p| 100.0 * p.flops / total)
                .collect()
        };
        let one = |phase: &str, tower: &str| share(phase, tower).iter().sum::<f64>();
        let images = share("train", "image");
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.config,
            images
                .iter()
                .map(|v| format!("{v:.1}"))
                .collect::<Vec<_>>()
                .join(" / "),
            one("train", "text"),
            one("train", "loss"),
            one("score", "image"),
            one("score", "text"),
            one("score", "selection"),
        );
    }
}
