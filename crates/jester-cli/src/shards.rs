//! `jester shards`: build, inspect and split WebDataset shard sets.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use jester_data::expand_shards;
use jester_data::tools::{contact_sheet, convert, inspect, split};

use crate::output::{write_atomic, write_json};

#[derive(Subcommand)]
pub enum ShardsCommand {
    /// Shards from a folder of images and a captions file (CSV, TSV or JSONL: file name → caption).
    Convert(ConvertArgs),
    /// Counts, caption and image statistics, bad samples by reason, and a contact sheet.
    Inspect(InspectArgs),
    /// Deterministic pool / curated / eval splits by a hash of each sample's key.
    Split(SplitArgs),
}

#[derive(Args)]
pub struct ConvertArgs {
    /// Folder holding the images.
    #[arg(long)]
    images: PathBuf,
    /// Captions file: .csv/.tsv with a header (file/filename/image/path/name and caption/text
    /// columns) or .jsonl objects with such keys.
    #[arg(long)]
    captions: PathBuf,
    /// Output folder for 00000.tar, 00001.tar, …
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    samples_per_shard: usize,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Shards: files, folders, globs or brace ranges (data/{00000..00127}.tar).
    #[arg(required = true)]
    shards: Vec<String>,
    /// Where to draw the contact sheet of the first samples (PNG).
    #[arg(long)]
    contact_sheet: Option<PathBuf>,
    /// Samples on the contact sheet.
    #[arg(long, default_value_t = 24)]
    sheet_samples: usize,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

#[derive(Args)]
pub struct SplitArgs {
    #[arg(required = true)]
    shards: Vec<String>,
    /// Output folder: pool/, curated/ and eval/ shards.
    #[arg(long)]
    out: PathBuf,
    /// Fraction of samples for the curated split.
    #[arg(long, default_value_t = 0.05)]
    curated: f64,
    /// Fraction of samples for the evaluation split.
    #[arg(long, default_value_t = 0.05)]
    eval: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 10_000)]
    samples_per_shard: usize,
}

pub fn run(command: ShardsCommand) -> Result<()> {
    match command {
        ShardsCommand::Convert(a) => {
            let r = convert::convert(&a.images, &a.captions, &a.out, a.samples_per_shard)?;
            println!(
                "wrote {} samples in {} shards to {}; skipped {} rows: {} missing image, {} unsupported extension, {} empty caption",
                r.samples,
                r.shards.len(),
                a.out.display(),
                r.missing_image + r.unsupported_extension + r.empty_caption,
                r.missing_image,
                r.unsupported_extension,
                r.empty_caption
            );
            Ok(())
        }
        ShardsCommand::Inspect(a) => {
            let shards = expand_shards(&a.shards)?;
            let sheet_n = if a.contact_sheet.is_some() {
                a.sheet_samples
            } else {
                0
            };
            let (report, first) = inspect::inspect(shards, a.workers, sheet_n)?;
            let s = |x: &inspect::Stats| format!("{:.0} / {:.1} / {:.0}", x.min, x.mean, x.max);
            println!("shards              {}", report.shards);
            println!("samples             {}", report.samples);
            println!("bad samples         {}", report.skipped);
            println!(
                "caption characters  {} (min / mean / max)",
                s(&report.caption_chars)
            );
            println!("caption words       {}", s(&report.caption_words));
            println!("distinct captions   {}", report.distinct_captions);
            println!("image width         {}", s(&report.image_width));
            println!("image height        {}", s(&report.image_height));
            for (kind, n) in &report.noise {
                println!(
                    "noise: {kind:<13} {n} ({:.1}%)",
                    100.0 * *n as f64 / report.samples.max(1) as f64
                );
            }
            if let Some(path) = &a.contact_sheet {
                let sheet = contact_sheet::render(&first, 6, 96);
                let mut png = std::io::Cursor::new(Vec::new());
                sheet
                    .write_to(&mut png, image::ImageFormat::Png)
                    .context("encoding the contact sheet")?;
                write_atomic(path, png.get_ref())?;
                println!("contact sheet       {}", path.display());
            }
            if let Some(path) = &a.json {
                write_json(path, &report)?;
            }
            Ok(())
        }
        ShardsCommand::Split(a) => {
            let shards = expand_shards(&a.shards)?;
            let r = split::split(
                &shards,
                &a.out,
                a.curated,
                a.eval,
                a.seed,
                a.samples_per_shard,
            )?;
            println!(
                "split {} samples into pool {}, curated {}, eval {} under {}; {}",
                r.pool + r.curated + r.eval,
                r.pool,
                r.curated,
                r.eval,
                a.out.display(),
                r.skipped
            );
            Ok(())
        }
    }
}
