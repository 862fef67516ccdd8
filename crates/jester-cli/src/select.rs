//! `jester select`: JEST on embeddings a user already has.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use jester::loss::LossKind;
use jester::select::{
    batch_score, select, uniform_batch_score, Method, ScoreKind, SelectConfig, SelectionSize,
};
use serde::Serialize;

use crate::output::write_json;

#[derive(Args)]
pub struct SelectArgs {
    /// Learner embeddings: safetensors with `image` [B, D], `text` [B, D] (f32, f64, f16 or bf16), scalars `t`
    /// (the temperature, not its log) and `b`.
    #[arg(long, required_unless_present = "learner_image")]
    learner: Option<PathBuf>,
    #[command(flatten)]
    learner_npy: LearnerNpy,
    /// Reference embeddings, same layout (needed by the learnability and easy-reference scores).
    #[arg(long)]
    reference: Option<PathBuf>,
    #[command(flatten)]
    reference_npy: ReferenceNpy,
    /// Where to write the selection (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Fraction of the super-batch to drop: b = ⌊B·(1 − f)⌋.
    #[arg(long, conflicts_with = "batch", default_value_t = 0.8)]
    filter_ratio: f64,
    /// Keep exactly b examples (instead of --filter-ratio).
    #[arg(long)]
    batch: Option<usize>,
    /// N: joint selection draws b in N chunks (the last takes the remainder).
    #[arg(long, default_value_t = 16)]
    chunks: usize,
    /// learnability | hard-learner | easy-reference | uniform
    #[arg(long, default_value = "learnability")]
    score: ScoreKind,
    /// joint | independent | uniform
    #[arg(long, default_value = "joint")]
    method: Method,
    /// sigmoid | softmax: the loss the scores are computed with.
    #[arg(long, default_value = "sigmoid")]
    loss: LossKind,
    /// Scores are multiplied by the gain before sampling.
    #[arg(long, default_value_t = 100.0)]
    gain: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// auto (CUDA when available) | cpu | cuda | cuda:N
    #[arg(long, default_value = "auto")]
    device: String,
}

/// `.npy` input for the learner instead of a safetensors file.
#[derive(Args)]
struct LearnerNpy {
    /// Learner image embeddings, .npy [B, D] (any float dtype).
    #[arg(long, conflicts_with = "learner", requires_all = ["learner_text", "learner_t", "learner_b"])]
    learner_image: Option<PathBuf>,
    /// Learner text embeddings, .npy [B, D] (any float dtype).
    #[arg(long, requires = "learner_image")]
    learner_text: Option<PathBuf>,
    /// Learner temperature t (not its log).
    #[arg(long, requires = "learner_image", allow_hyphen_values = true)]
    learner_t: Option<f64>,
    /// Learner bias b.
    #[arg(long, requires = "learner_image", allow_hyphen_values = true)]
    learner_b: Option<f64>,
}

/// `.npy` input for the reference instead of a safetensors file.
#[derive(Args)]
struct ReferenceNpy {
    #[arg(long, conflicts_with = "reference", requires_all = ["reference_text", "reference_t", "reference_b"])]
    reference_image: Option<PathBuf>,
    #[arg(long, requires = "reference_image")]
    reference_text: Option<PathBuf>,
    #[arg(long, requires = "reference_image", allow_hyphen_values = true)]
    reference_t: Option<f64>,
    #[arg(long, requires = "reference_image", allow_hyphen_values = true)]
    reference_b: Option<f64>,
}

#[derive(Serialize)]
struct Output {
    /// Indices into the super-batch, in selection order.
    indices: Vec<i64>,
    /// `[start, end)` positions in `indices` that each chunk filled.
    chunks: Vec<[usize; 2]>,
    /// Mean learnability per example of the selected sub-batch, within it (null without a
    /// reference).
    score_selected: Option<f64>,
    /// The same for a uniformly drawn sub-batch of the super-batch, in expectation: the super-batch's
    /// mean learnability per example at batch size b (null without a reference).
    score_superbatch_mean: Option<f64>,
    settings: Settings,
    seconds: f64,
}

#[derive(Serialize)]
struct Settings {
    learner: String,
    reference: Option<String>,
    super_batch: usize,
    batch: usize,
    filter_ratio: f64,
    #[serde(flatten)]
    select: SelectConfig,
    device: String,
}

pub fn run(args: SelectArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let l = &args.learner_npy;
    let (learner, learner_name) = load_model(
        args.learner.as_deref(),
        [l.learner_image.as_deref(), l.learner_text.as_deref()],
        [l.learner_t, l.learner_b],
    )?
    .context(
        "give --learner FILE.safetensors or --learner-image/--learner-text/--learner-t/--learner-b",
    )?;
    let r = &args.reference_npy;
    let (reference, reference_name) = load_model(
        args.reference.as_deref(),
        [r.reference_image.as_deref(), r.reference_text.as_deref()],
        [r.reference_t, r.reference_b],
    )?
    .unzip();
    if let (Some(r), Some(name)) = (&reference, &reference_name) {
        if r.len() != learner.len() {
            bail!(
                "learner ({learner_name}) embeds B = {} examples but reference ({name}) embeds {}: both must cover the same super-batch, in the same order",
                learner.len(),
                r.len()
            );
        }
    }
    let config = SelectConfig {
        method: args.method,
        score: args.score,
        loss: args.loss,
        chunks: args.chunks,
        gain: args.gain,
        seed: args.seed,
    };
    if config.method != Method::Uniform && config.score.needs_reference() && reference.is_none() {
        bail!("the {} score needs the reference model's embeddings: pass --reference FILE (or --reference-image ...)", config.score.name());
    }
    let n = learner.len();
    let chunks = config.chunks_drawn();
    let size = match args.batch {
        Some(b) => SelectionSize::new(n, b, chunks)?,
        None => SelectionSize::from_filter_ratio(n, args.filter_ratio, chunks)?,
    };
    let kind = learner.kind();
    let learner = learner.to(device, kind);
    let reference = reference.map(|r| r.to(device, kind));

    let start = Instant::now();
    let selection = select(&learner, reference.as_ref(), size.batch, &config)?;
    let seconds = start.elapsed().as_secs_f64();

    let (score_selected, score_superbatch_mean) = match &reference {
        Some(r) => {
            let index = selection.index_tensor(device);
            let block = size.chunk_sizes()[0].max(256);
            let kind = ScoreKind::Learnability;
            (
                Some(batch_score(
                    kind,
                    config.loss,
                    &learner,
                    Some(r),
                    &index,
                    block,
                )?),
                Some(uniform_batch_score(
                    kind,
                    config.loss,
                    &learner,
                    Some(r),
                    size.batch,
                    block,
                )?),
            )
        }
        None => (None, None),
    };
    let output = Output {
        chunks: selection.chunks.iter().map(|r| [r.start, r.end]).collect(),
        indices: selection.indices,
        score_selected,
        score_superbatch_mean,
        settings: Settings {
            learner: learner_name,
            reference: reference_name,
            super_batch: n,
            batch: size.batch,
            filter_ratio: size.filter_ratio(),
            select: config,
            device: format!("{device:?}"),
        },
        seconds,
    };
    write_json(&args.out, &output)?;
    let scores = match (score_selected, score_superbatch_mean) {
        (Some(s), Some(m)) => {
            format!("; mean learnability {s:.4} selected vs {m:.4} for a uniform sub-batch")
        }
        _ => String::new(),
    };
    tracing::info!(
        "selected {} of {} ({} by {}, {} chunks) in {:.3} s on {:?}{scores}; wrote {}",
        size.batch,
        n,
        config.method.name(),
        if config.method == Method::Uniform {
            "no score"
        } else {
            config.score.name()
        },
        size.chunks,
        seconds,
        device,
        args.out.display()
    );
    Ok(())
}

/// One model's embeddings from a safetensors file or an `.npy` pair with its t and b (clap has
/// already checked that the npy flags come together), and a name for reports; `None` if neither.
fn load_model(
    file: Option<&std::path::Path>,
    [image, text]: [Option<&std::path::Path>; 2],
    [t, b]: [Option<f64>; 2],
) -> Result<Option<(jester::PairEmbeddings, String)>> {
    Ok(match (file, image, text) {
        (Some(path), _, _) => Some((
            jester::io::read_safetensors(path)?,
            path.display().to_string(),
        )),
        (None, Some(image), Some(text)) => {
            let e = jester::io::read_npy_pair(
                image,
                text,
                t.unwrap_or(f64::NAN),
                b.unwrap_or(f64::NAN),
            )?;
            Some((e, format!("{} + {}", image.display(), text.display())))
        }
        _ => None,
    })
}

/// `--device NAME` ([`jester::parse_device`]).
pub fn parse_device(name: &str) -> Result<tch::Device> {
    jester::parse_device(name).map_err(|why| anyhow::anyhow!("--device {why}"))
}
