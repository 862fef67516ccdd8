//! `jester bench stream`: bounded memory over a long stream. A million small samples (8×8 PNGs,
//! short captions) go through the loader — read, shuffle buffer, decode on worker threads, tokenise
//! — while resident memory is sampled; after warm-up it must stay flat whatever the stream's
//! length (nothing may grow per sample: cursors, skip counts, queues).
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use jester_data::decode::{decode, DecodeOptions};
use jester_data::tokenizer::TextTokenizer;
use jester_data::{Loader, LoaderOptions, RawSample, ShardWriter};

#[derive(Args)]
pub struct StreamBench {
    /// Samples streamed.
    #[arg(long, default_value_t = 1_000_000)]
    samples: usize,
    /// Samples per shard.
    #[arg(long, default_value_t = 10_000)]
    shard_size: usize,
    /// Resident memory is read every this many samples.
    #[arg(long, default_value_t = 50_000)]
    every: usize,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Where to write the samples (default: a temporary folder, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub fn run(args: StreamBench) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("jester-bench-stream-{}", std::process::id()))
    });
    // A generated folder goes again however the bench ends.
    let _cleanup = args.dir.is_none().then(|| RemoveOnDrop(dir.clone()));
    let started = Instant::now();
    let shards = generate(&dir, args.samples, args.shard_size)?;
    eprintln!(
        "wrote {} samples in {} shards in {:.0} s",
        args.samples,
        shards.len(),
        started.elapsed().as_secs_f64()
    );
    let tokenizer = Arc::new(TextTokenizer::train_bpe(
        (0..200).map(|i| format!("a small {} square number {i}", colour(i))),
        300,
        1,
    )?);
    let decode_options = DecodeOptions::default();
    let work = Arc::new(move |raw: RawSample| {
        let sample = decode(&raw, &decode_options)?;
        let tokens = tokenizer
            .encode(&sample.caption, 16)
            .expect("encodable caption");
        Ok((sample.image.into_raw().len(), tokens.len()))
    });
    let options = LoaderOptions {
        workers: args.workers,
        epochs: Some(1),
        ..LoaderOptions::default()
    };
    let mut loader = Loader::new(shards, &options, work, None)?;
    let start = Instant::now();
    let (mut n, mut next) = (0usize, 0usize);
    let mut readings = Vec::new();
    loop {
        let batch = loader.next_batch(1024)?;
        if batch.is_empty() {
            break;
        }
        n += batch.len();
        if n >= next {
            readings.push((n, rss_mib()));
            next += args.every;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    readings.push((n, rss_mib()));
    drop(loader);
    println!("samples  resident MiB");
    for (samples, mib) in &readings {
        println!("{samples:>8}  {mib:.1}");
    }
    // Warm-up: the first reading past the shuffle buffer and queues filling.
    let warm = readings
        .iter()
        .find(|r| r.0 >= 100_000.min(n / 4))
        .map_or(0.0, |r| r.1);
    let peak = readings.iter().map(|r| r.1).fold(0.0, f64::max);
    let last = readings.last().map_or(0.0, |r| r.1);
    println!(
        "stream: {n} samples in {seconds:.0} s ({:.0} samples/s, {} workers); resident memory after \
         warm-up {warm:.1} MiB, at the end {last:.1} MiB, peak {peak:.1} MiB ({:+.1} MiB from \
         warm-up to the end)",
        n as f64 / seconds,
        args.workers,
        last - warm
    );
    Ok(())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn colour(i: usize) -> &'static str {
    ["red", "green", "blue", "white"][i % 4]
}

/// `samples` 8×8 PNGs with captions, in shards of `shard_size`.
fn generate(dir: &std::path::Path, samples: usize, shard_size: usize) -> Result<Vec<PathBuf>> {
    let mut writer = ShardWriter::new(dir, shard_size)?;
    for i in 0..samples {
        let shade = (i % 251) as u8;
        let img = image::RgbImage::from_fn(8, 8, |x, y| {
            image::Rgb([shade, (x * 32) as u8, (y * 32) as u8])
        });
        let mut png = Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png)?;
        writer.write(
            &RawSample::new(format!("{i:09}"))
                .with("png", png.into_inner())
                .with("txt", format!("a small {} square number {i}", colour(i))),
        )?;
    }
    Ok(writer.finish()?)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
