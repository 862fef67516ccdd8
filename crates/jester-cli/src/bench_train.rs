//! `jester bench train`: steps/s and examples/s of every method on one model, the model FLOP
//! utilisation against the machine's measured GEMM rate, and the measured per-iteration cost of
//! each method relative to uniform (wall time and executed FLOPs).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use tch::Tensor;

use jester::config::{TrainConfig, TrainMethod};
use jester::run_dir::{load_trained, ReferenceSource, RunDir, Unfinished};
use jester::train::{train, Seams, Silent, Start, TrainOptions};
use jester_data::benchmark::synthetic::{generate, SyntheticConfig};

use crate::measure::gflops;
use crate::output::write_json;
use crate::select::parse_device;

#[derive(Args)]
pub struct TrainBench {
    /// Preset or TOML file, as `jester train --config`.
    #[arg(long, default_value = "tiny")]
    config: String,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Timed steps per method (after the warm-up steps).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "uniform,jest,independent,flexi-jest"
    )]
    methods: Vec<TrainMethod>,
    /// A benchmark folder (pool/, curated-strong/); default: synthetic scenes generated once into
    /// target/bench-train-data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Scratch folder for the runs (removed and remade).
    #[arg(long, default_value = "target/bench-train")]
    work: PathBuf,
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct MethodRow {
    method: &'static str,
    batch: usize,
    super_batch: usize,
    steps_per_second: f64,
    examples_per_second: f64,
    seconds_per_step: BTreeMap<String, f64>,
    gflop_per_step: f64,
    achieved_gflops: f64,
    mfu: f64,
    wall_cost_vs_uniform: Option<f64>,
    flop_cost_vs_uniform: f64,
    /// The training loss after the last step (same seed and data for every precision).
    final_loss: f64,
}

#[derive(Serialize)]
struct Report {
    config: String,
    device: String,
    precision: &'static str,
    threads: i32,
    gemm_gflops_square_2048: f64,
    parameters: usize,
    rows: Vec<MethodRow>,
}

pub fn run(args: TrainBench) -> Result<()> {
    let device = parse_device(&args.device)?;
    let data = match &args.data {
        Some(d) => d.clone(),
        None => synthetic_data(Path::new("target/bench-train-data"))?,
    };
    let _ = std::fs::remove_dir_all(&args.work);
    std::fs::create_dir_all(&args.work)?;
    let base = TrainConfig::load(&args.config, &args.set)?;
    let total = args.steps + args.warmup;

    // A reference of a few steps: its quality does not matter for throughput, only its cost.
    let reference_dir = args.work.join("reference");
    let mut reference = base.clone();
    reference.method = TrainMethod::Uniform;
    reference.steps = 2;
    let curated = data.join("curated-strong");
    let options = |out: &Path, source: ReferenceSource, data: &Path| TrainOptions {
        out: out.to_owned(),
        data: vec![data.to_string_lossy().into_owned()],
        reference: source,
        unfinished_reference: Unfinished::Refuse,
        device,
        eval: None,
    };
    train(
        Start::Fresh(Box::new(reference)),
        &options(&reference_dir, ReferenceSource::None, &curated),
        Seams::single_process(Box::new(jester::eval::open)),
        &mut Silent,
    )?;
    let trained = load_trained(&reference_dir, device, Unfinished::Refuse)?;
    let cache = args.work.join("reference-pool.safetensors");
    let pool = data.join("pool");
    jester::embed::embed_shards(
        &trained,
        &[pool.to_string_lossy().into_owned()],
        &cache,
        1024,
        2,
        &jester::collective::SingleProcess,
        |_| {},
    )?;
    let tokenizer = reference_dir
        .join("tokenizer.json")
        .to_string_lossy()
        .into_owned();

    // MFU is measured against a GEMM in the arithmetic the forward passes use.
    let precision = base.precision;
    let s = Tensor::randn([2048, 2048], (precision.kind(), device));
    let gemm = gflops(2.0 * 2048f64.powi(3), device, || {
        let _ = s.matmul(&s);
    });
    eprintln!(
        "GEMM {} 2048³: {gemm:.1} GFLOP/s on {device:?} with {} threads",
        precision.name(),
        tch::get_num_threads()
    );

    let mut rows: Vec<MethodRow> = Vec::new();
    let mut parameters = 0;
    for &method in &args.methods {
        let mut config = base.clone();
        config.method = method;
        config.steps = total;
        config.log_every = 1;
        config.checkpoint_every = 0;
        config.data.tokenizer = tokenizer.clone();
        let out = args.work.join(method.name());
        let summary = train(
            Start::Fresh(Box::new(config.clone())),
            &options(&out, ReferenceSource::Cache(cache.clone()), &pool),
            Seams::single_process(Box::new(jester::eval::open)),
            &mut Silent,
        )?;
        parameters = summary.parameters;
        let lines = RunDir::new(&out).metrics()?;
        let timed = &lines[args.warmup..];
        let mut seconds: BTreeMap<String, f64> = BTreeMap::new();
        for line in timed {
            for (phase, v) in &line.seconds_per_step {
                *seconds.entry(phase.clone()).or_default() += v / timed.len() as f64;
            }
        }
        let per_step: f64 = seconds.values().sum();
        let flop_per_step = (summary.flops_train + summary.flops_score) / total as f64;
        let uniform_step = rows
            .iter()
            .find(|r| r.method == "uniform")
            .map(|r| 1.0 / r.steps_per_second);
        let row = MethodRow {
            method: method.name(),
            batch: config.batch,
            super_batch: config.super_batch(),
            steps_per_second: 1.0 / per_step,
            examples_per_second: config.batch as f64 / per_step,
            seconds_per_step: seconds,
            gflop_per_step: flop_per_step / 1e9,
            achieved_gflops: flop_per_step / 1e9 / per_step,
            mfu: flop_per_step / 1e9 / per_step / gemm,
            wall_cost_vs_uniform: uniform_step.map(|u| per_step / u),
            flop_cost_vs_uniform: summary.cost_vs_uniform,
            final_loss: summary.final_loss,
        };
        eprintln!(
            "{:<12} {:6.2} steps/s {:8.0} examples/s {:7.1} GFLOP/step {:5.1}% MFU",
            row.method,
            row.steps_per_second,
            row.examples_per_second,
            row.gflop_per_step,
            100.0 * row.mfu
        );
        rows.push(row);
    }
    let report = Report {
        config: args.config.clone(),
        device: format!("{device:?}"),
        precision: precision.name(),
        threads: tch::get_num_threads(),
        gemm_gflops_square_2048: gemm,
        parameters,
        rows,
    };
    print_table(&report);
    if let Some(out) = &args.out {
        write_json(out, &report)?;
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "| method | b / B | steps/s | examples/s | s/step (load / score / select / step) | GFLOP/step | GFLOP/s | MFU | cost vs uniform: wall | FLOPs | final loss |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &r.rows {
        let s = |k: &str| row.seconds_per_step.get(k).copied().unwrap_or(0.0);
        println!(
            "| {} | {} / {} | {:.2} | {:.0} | {:.3} / {:.3} / {:.3} / {:.3} | {:.1} | {:.1} | {:.1}% | {} | {:.2}× | {:.4} |",
            row.method,
            row.batch,
            row.super_batch,
            row.steps_per_second,
            row.examples_per_second,
            s("load"),
            s("score"),
            s("select"),
            s("step"),
            row.gflop_per_step,
            row.achieved_gflops,
            100.0 * row.mfu,
            row.wall_cost_vs_uniform.map_or("—".into(), |c| format!("{c:.2}×")),
            row.flop_cost_vs_uniform,
            row.final_loss,
        );
    }
    println!(
        "\n{} parameters, {p} forward passes; GEMM {p} 2048³ {:.1} GFLOP/s on {} ({} threads)",
        r.parameters,
        r.gemm_gflops_square_2048,
        r.device,
        r.threads,
        p = r.precision,
    );
}

/// The synthetic benchmark used when no --data is given, generated once.
fn synthetic_data(dir: &Path) -> Result<PathBuf> {
    if dir.join("summary.json").exists() {
        return Ok(dir.to_owned());
    }
    let _ = std::fs::remove_dir_all(dir);
    let mut config = SyntheticConfig::default();
    config.benchmark.pool = 8192;
    config.benchmark.curated = 1024;
    config.benchmark.eval = 256;
    eprintln!("generating synthetic scenes into {}", dir.display());
    generate(&config, dir)?;
    Ok(dir.to_owned())
}
