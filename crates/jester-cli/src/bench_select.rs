//! `jester bench select`: joint selection of b from B against the machine's GEMM rate, the naive
//! implementation and the paper's way in numpy.
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use jester::select::{
    batch_score, select, select_naive, uniform_batch_score, ScoreKind, SelectConfig, SelectionSize,
};
use jester::PairEmbeddings;
use jester_data::synthetic_embeddings::{generate, ClusteredConfig, ModelEmbeddings};
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::measure::{gflops, sync, PeakRss};
use crate::output::write_json;
use crate::select::parse_device;

#[derive(Args)]
pub struct SelectBench {
    #[arg(long, default_value_t = 20_480)]
    super_batch: usize,
    #[arg(long, default_value_t = 256)]
    dim: usize,
    #[arg(long, default_value_t = 0.8)]
    filter_ratio: f64,
    #[arg(long, default_value_t = 16)]
    chunks: usize,
    /// Timed runs of the streamed selection (after one warm-up).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Also run tools/reference/jest_numpy.py (materialised [B, B] matrices, paper Alg. 1).
    #[arg(long)]
    numpy: bool,
    /// Also run jester's own naive twin (materialised [B, B] matrices in libtorch).
    #[arg(long)]
    naive: bool,
    /// Python with numpy for --numpy (default: the venv scripts/with-torch set up, else python3).
    #[arg(long)]
    python: Option<String>,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Write every number as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    super_batch: usize,
    batch: usize,
    chunks: usize,
    dim: usize,
    device: String,
    threads: i32,
    gemm_gflops_block_shape: f64,
    gemm_gflops_square_2048: f64,
    select_seconds: Vec<f64>,
    select_best_seconds: f64,
    select_peak_extra_bytes: u64,
    block_gflop: f64,
    block_gemm_seconds: f64,
    achieved_gflops: f64,
    mean_learnability_selected: f64,
    mean_learnability_uniform: f64,
    naive_torch: Option<Baseline>,
    numpy: Option<Baseline>,
}

#[derive(Serialize)]
struct Baseline {
    seconds: f64,
    peak_extra_bytes: u64,
    mean_learnability_selected: f64,
}

pub fn run(args: SelectBench) -> Result<()> {
    let device = parse_device(&args.device)?;
    let size = SelectionSize::from_filter_ratio(args.super_batch, args.filter_ratio, args.chunks)?;
    let world = generate(&ClusteredConfig {
        examples: args.super_batch,
        dim: args.dim,
        clusters: (args.super_batch / 80).max(1),
        ..Default::default()
    })?;
    let pair = |m: &ModelEmbeddings| -> Result<PairEmbeddings> {
        let shape = [args.super_batch as i64, args.dim as i64];
        let image = Tensor::from_slice(&m.image)
            .reshape(shape)
            .to_device(device);
        let text = Tensor::from_slice(&m.text).reshape(shape).to_device(device);
        Ok(PairEmbeddings::new(image, text, m.t as f64, m.b as f64)?)
    };
    let (learner, reference) = (pair(&world.learner)?, pair(&world.reference)?);
    let config = SelectConfig {
        chunks: args.chunks,
        ..SelectConfig::default()
    };
    let sizes = size.chunk_sizes();
    eprintln!(
        "bench select: b = {} of B = {}, N = {}, D = {}, {:?}, {} libtorch threads",
        size.batch,
        size.super_batch,
        size.chunks,
        args.dim,
        device,
        tch::get_num_threads()
    );

    // The machine's f32 GEMM rate, on the block products' own shape and on a square one.
    let c = sizes[0] as i64;
    let options = (Kind::Float, device);
    let (a, b) = (
        Tensor::randn([c, args.dim as i64], options),
        Tensor::randn([args.super_batch as i64, args.dim as i64], options),
    );
    let gemm_block = gflops(
        2.0 * (c * args.dim as i64 * args.super_batch as i64) as f64,
        device,
        || {
            let _ = a.matmul(&b.tr());
        },
    );
    let s = Tensor::randn([2048, 2048], options);
    let gemm_square = gflops(2.0 * 2048f64.powi(3), device, || {
        let _ = s.matmul(&s);
    });
    eprintln!("GEMM f32: {gemm_block:.1} GFLOP/s on [{c}, {}]·[{}, {}], {gemm_square:.1} GFLOP/s on 2048³", args.dim, args.dim, args.super_batch);

    // The streamed selection: peak memory over the first run, then timed runs.
    let rss = PeakRss::reset();
    let selection = select(&learner, Some(&reference), size.batch, &config)?;
    let peak = rss.extra();
    let mut times = Vec::new();
    for _ in 0..args.repeats.max(1) {
        let start = Instant::now();
        let again = select(&learner, Some(&reference), size.batch, &config)?;
        sync(device);
        times.push(start.elapsed().as_secs_f64());
        if again != selection {
            bail!("the same seed gave a different selection");
        }
    }
    let best = times.iter().cloned().fold(f64::INFINITY, f64::min);

    // The block products joint selection executes: every chunk but the last adds a rows block and a
    // columns block of [C, D]·[D, B] per model.
    let (dim, n) = (args.dim as f64, args.super_batch as f64);
    let added: Vec<usize> = sizes[..sizes.len() - 1].to_vec();
    let block_flop: f64 = added
        .iter()
        .map(|&k| 2.0 * 2.0 * 2.0 * k as f64 * dim * n)
        .sum();
    let blocks: Vec<Tensor> = added
        .iter()
        .map(|&k| Tensor::randn([k as i64, args.dim as i64], options))
        .collect();
    let start = Instant::now();
    for x in &blocks {
        for _ in 0..4 {
            let _ = x.matmul(&b.tr());
        }
    }
    sync(device);
    let block_gemm_seconds = start.elapsed().as_secs_f64();

    let score = |indices: &[i64]| -> Result<f64> {
        let index = Tensor::from_slice(indices).to_device(device);
        let kind = ScoreKind::Learnability;
        Ok(batch_score(
            kind,
            config.loss,
            &learner,
            Some(&reference),
            &index,
            1024,
        )?)
    };
    let selected_score = score(&selection.indices)?;
    let uniform_score = uniform_batch_score(
        ScoreKind::Learnability,
        config.loss,
        &learner,
        Some(&reference),
        size.batch,
        1024,
    )?;

    let naive_torch = if args.naive {
        let rss = PeakRss::reset();
        let start = Instant::now();
        let s = select_naive(&learner, Some(&reference), size.batch, &config)?;
        sync(device);
        let seconds = start.elapsed().as_secs_f64();
        let peak_extra_bytes = rss.extra();
        if s != selection {
            tracing::warn!("the naive twin selected differently (f32 near-ties): compare the learnability instead");
        }
        Some(Baseline {
            seconds,
            peak_extra_bytes,
            mean_learnability_selected: score(&s.indices)?,
        })
    } else {
        None
    };
    let numpy = if args.numpy {
        Some(run_numpy(
            &args, &learner, &reference, &size, &config, &score,
        )?)
    } else {
        None
    };

    let report = Report {
        super_batch: size.super_batch,
        batch: size.batch,
        chunks: size.chunks,
        dim: args.dim,
        device: format!("{device:?}"),
        threads: tch::get_num_threads(),
        gemm_gflops_block_shape: gemm_block,
        gemm_gflops_square_2048: gemm_square,
        select_best_seconds: best,
        select_seconds: times,
        select_peak_extra_bytes: peak,
        block_gflop: block_flop / 1e9,
        block_gemm_seconds,
        achieved_gflops: block_flop / 1e9 / best,
        mean_learnability_selected: selected_score,
        mean_learnability_uniform: uniform_score,
        naive_torch,
        numpy,
    };
    print_report(&report);
    if let Some(out) = &args.out {
        write_json(out, &report)?;
    }
    Ok(())
}

fn run_numpy(
    args: &SelectBench,
    learner: &PairEmbeddings,
    reference: &PairEmbeddings,
    size: &SelectionSize,
    config: &SelectConfig,
    score: &dyn Fn(&[i64]) -> Result<f64>,
) -> Result<Baseline> {
    let dir = std::env::temp_dir().join(format!("jester-bench-numpy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for (name, x) in [
        ("learner_image", learner.image()),
        ("learner_text", learner.text()),
        ("reference_image", reference.image()),
        ("reference_text", reference.text()),
    ] {
        x.to_device(Device::Cpu)
            .write_npy(dir.join(format!("{name}.npy")))?;
    }
    let params = serde_json::json!({
        "learner_t": learner.temperature(), "learner_b": learner.bias(),
        "reference_t": reference.temperature(), "reference_b": reference.bias(),
    });
    std::fs::write(dir.join("params.json"), params.to_string())?;
    let script = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tools/reference/jest_numpy.py"
    ));
    let python = args
        .python
        .clone()
        .or_else(|| std::env::var("JESTER_TORCH_PYTHON").ok())
        .unwrap_or_else(|| "python3".into());
    let out = dir.join("result.json");
    eprintln!(
        "running the numpy baseline ({python} {}) …",
        script.display()
    );
    let status = Command::new(&python)
        .arg(&script)
        .args(["--inputs", dir.to_str().context("temp dir path")?])
        .args([
            "--batch",
            &size.batch.to_string(),
            "--chunks",
            &size.chunks.to_string(),
        ])
        .args([
            "--gain",
            &config.gain.to_string(),
            "--seed",
            &config.seed.to_string(),
        ])
        .args(["--out", out.to_str().context("temp dir path")?])
        .status()
        .with_context(|| format!("running {python}"))?;
    if !status.success() {
        bail!("the numpy baseline failed ({status})");
    }
    let result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    let _ = std::fs::remove_dir_all(&dir);
    let indices: Vec<i64> = serde_json::from_value(result["indices"].clone())?;
    let number = |key: &str| {
        result[key]
            .as_f64()
            .with_context(|| format!("numpy result lacks {key}"))
    };
    Ok(Baseline {
        seconds: number("seconds")?,
        peak_extra_bytes: (number("peak_rss_bytes")? - number("rss_before_bytes")?).max(0.0) as u64,
        mean_learnability_selected: score(&indices)?,
    })
}

fn print_report(r: &Report) {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!("| path | time (s) | peak extra memory (GiB) | mean learnability of selection |");
    println!("|---|---|---|---|");
    println!(
        "| jester streamed ({}, best of {}) | {:.3} | {:.3} | {:.4} |",
        r.device,
        r.select_seconds.len(),
        r.select_best_seconds,
        gib(r.select_peak_extra_bytes),
        r.mean_learnability_selected
    );
    for (name, b) in [
        ("jester naive twin, libtorch [B, B]", &r.naive_torch),
        ("numpy, paper Alg. 1 [B, B]", &r.numpy),
    ] {
        if let Some(b) = b {
            println!(
                "| {name} | {:.3} ({:.1}× jester) | {:.3} ({:.1}× jester) | {:.4} |",
                b.seconds,
                b.seconds / r.select_best_seconds,
                gib(b.peak_extra_bytes),
                b.peak_extra_bytes as f64 / r.select_peak_extra_bytes.max(1 << 20) as f64,
                b.mean_learnability_selected
            );
        }
    }
    println!();
    println!(
        "block products: {:.1} GFLOP, {:.3} s as bare GEMMs; achieved {:.1} GFLOP/s over the whole selection \
         = {:.0}% of the measured GEMM rate ({:.1} GFLOP/s on the block shape, {:.1} on 2048³); expected for a uniform sub-batch {:.4}",
        r.block_gflop,
        r.block_gemm_seconds,
        r.achieved_gflops,
        100.0 * r.achieved_gflops / r.gemm_gflops_block_shape,
        r.gemm_gflops_block_shape,
        r.gemm_gflops_square_2048,
        r.mean_learnability_uniform
    );
}
