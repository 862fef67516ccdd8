//! `jester bench loader`: how fast the data pipeline feeds training on this machine — shards read,
//! images decoded, preprocessed (resize + crop + normalise) and captions tokenised, on worker
//! threads — and its peak memory.
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, ValueEnum};
use jester_data::decode::{decode, DecodeOptions};
use jester_data::tokenizer::TextTokenizer;
use jester_data::transform::Preprocess;
use jester_data::{expand_shards, Loader, LoaderOptions, RawSample, ShardWriter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::measure::PeakRss;

#[derive(Args)]
pub struct LoaderBench {
    /// Shards to read; without it, shards of --input images are generated in a temp folder.
    #[arg(long, num_args = 1..)]
    data: Vec<String>,
    /// What to generate.
    #[arg(long, value_enum, default_value_t = Input::Jpeg)]
    input: Input,
    /// Width of generated images.
    #[arg(long, default_value_t = 224)]
    image_size: u32,
    /// Height of generated images (default: --image-size).
    #[arg(long)]
    image_height: Option<u32>,
    /// The model's input resolution.
    #[arg(long, default_value_t = 224)]
    resolution: u32,
    /// Samples to generate / to time.
    #[arg(long, default_value_t = 4000)]
    samples: usize,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Tokens per caption.
    #[arg(long, default_value_t = 32)]
    context_length: usize,
    /// Random resized crops (training) instead of centre crops.
    #[arg(long)]
    train: bool,
    /// What the workers hand over: 8-bit pixels (what training loads now; normalised on the
    /// device) or normalised f32 (as before).
    #[arg(long, value_enum, default_value_t = Output::U8)]
    output: Output,
    /// Decode every image at its own size (as before): no size hint, so no DCT-scaled JPEG
    /// decoding and SVGs drawn at their declared size.
    #[arg(long)]
    full_size_decode: bool,
}

/// What a loaded sample's pixels are.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Output {
    U8,
    F32,
}

/// Generated images.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Input {
    /// Photo-like JPEGs (gradients plus noise).
    Jpeg,
    /// Clip-art SVGs (filled and stroked shapes) declaring the image size as their own.
    Svg,
}

pub fn run(args: LoaderBench) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("jester-bench-loader-{}", std::process::id()));
    let size = (
        args.image_size,
        args.image_height.unwrap_or(args.image_size),
    );
    let shards = if args.data.is_empty() {
        generate(&dir, args.samples, size, args.input)?
    } else {
        expand_shards(&args.data)?
    };
    let captions = (0..500).map(|i| {
        format!(
            "a photo of object {i} in a {} scene",
            ["red", "green", "blue"][i % 3]
        )
    });
    let tokenizer = Arc::new(TextTokenizer::train_bpe(captions, 512, 1)?);
    let preprocess = Preprocess {
        resolution: args.resolution,
        train: args.train,
        ..Preprocess::default()
    };
    let decode_options = DecodeOptions {
        target_side: (!args.full_size_decode).then(|| preprocess.source_side()),
        ..DecodeOptions::default()
    };
    let output = args.output;
    let context = args.context_length;
    let work = Arc::new(move |raw: RawSample| {
        let sample = decode(&raw, &decode_options)?;
        let mut rng =
            ChaCha8Rng::seed_from_u64(jester_data::tools::inspect::fnv1a(sample.key.as_bytes()));
        let image = image::DynamicImage::ImageRgb8(sample.image);
        // The bytes handed over: 8-bit HWC, or 4-byte floats (kept as bytes to share one type).
        let pixels: Vec<u8> = match output {
            Output::U8 => preprocess
                .resample(&image, &mut rng)
                .expect("valid preprocessing")
                .into_raw(),
            Output::F32 => preprocess
                .apply(&image, &mut rng)
                .expect("valid preprocessing")
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect(),
        };
        let tokens = tokenizer
            .encode(&sample.caption, context)
            .expect("encodable caption");
        Ok((pixels, tokens))
    });
    let options = LoaderOptions {
        workers: args.workers,
        epochs: None,
        ..LoaderOptions::default()
    };
    let rss = PeakRss::reset();
    let mut loader = Loader::new(shards, &options, work, None)?;
    let warm = loader.next_batch(256)?.len();
    let start = Instant::now();
    let mut n = 0;
    while n < args.samples {
        n += loader.next_batch(256)?.len();
    }
    let seconds = start.elapsed().as_secs_f64();
    let peak = rss.extra();
    drop(loader);
    let _ = std::fs::remove_dir_all(&dir);
    let source = if args.data.is_empty() {
        let kind = if args.input == Input::Svg {
            "SVGs"
        } else {
            "JPEGs"
        };
        format!("generated {}×{} {kind}", size.0, size.1)
    } else {
        args.data.join(" ")
    };
    println!(
        "loader: {:.0} samples/s ({} samples of {source} → {}×{}{} {}{}, T = {}, {} workers after {warm} warm-up); peak extra memory {:.0} MiB",
        n as f64 / seconds,
        n,
        args.resolution,
        args.resolution,
        if args.train { " random crops" } else { " centre crops" },
        if args.output == Output::U8 { "u8" } else { "f32" },
        if args.full_size_decode { ", decoded at full size" } else { "" },
        args.context_length,
        args.workers,
        peak as f64 / (1 << 20) as f64
    );
    Ok(())
}

/// `samples` images of `width × height` and their captions, in shards of 1000.
fn generate(
    dir: &std::path::Path,
    samples: usize,
    (width, height): (u32, u32),
    input: Input,
) -> Result<Vec<PathBuf>> {
    let mut writer = ShardWriter::new(dir, 1000)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for i in 0..samples {
        let (extension, bytes) = match input {
            Input::Jpeg => ("jpg", jpeg(&mut rng, i, width, height)?),
            Input::Svg => ("svg", svg(&mut rng, width, height).into_bytes()),
        };
        let caption = format!(
            "a photo of object {i} in a {} scene",
            ["red", "green", "blue"][i % 3]
        );
        writer.write(
            &RawSample::new(format!("{i:09}"))
                .with(extension, bytes)
                .with("txt", caption),
        )?;
    }
    Ok(writer.finish()?)
}

/// Smooth gradients plus noise, so it compresses like a photo.
fn jpeg(rng: &mut impl Rng, i: usize, width: u32, height: u32) -> Result<Vec<u8>> {
    let (a, b, c): (f32, f32, f32) = (rng.gen(), rng.gen(), rng.gen());
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
        let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729) ^ i as u32) % 32;
        image::Rgb([
            (255.0 * (a * u + (1.0 - a) * v)) as u8 ^ n as u8,
            (255.0 * b * u * v) as u8,
            (255.0 * c) as u8 ^ (n as u8 / 2),
        ])
    });
    let mut jpeg = Cursor::new(Vec::new());
    img.write_to(&mut jpeg, image::ImageFormat::Jpeg)?;
    Ok(jpeg.into_inner())
}

/// Clip art in the manner of OpenMoji: a 72-unit view box drawn at the declared size, a dozen
/// filled and outlined shapes.
fn svg(rng: &mut impl Rng, width: u32, height: u32) -> String {
    let mut shapes = String::new();
    for _ in 0..12 {
        let (x, y, r) = (
            rng.gen_range(8..64),
            rng.gen_range(8..64),
            rng.gen_range(4..20),
        );
        let fill = rng.gen::<u32>() & 0xff_ffff;
        shapes += &format!(
            r##"<circle cx="{x}" cy="{y}" r="{r}" fill="#{fill:06x}" stroke="#000" stroke-width="2"/><path d="M{x} {y} q 10 -20 20 0 t 20 0" fill="none" stroke="#{fill:06x}" stroke-linecap="round" stroke-width="3"/>"##
        );
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 72 72" preserveAspectRatio="none">{shapes}</svg>"#
    )
}
