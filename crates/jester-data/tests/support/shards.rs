//! Helpers shared by the shard tests (included with `#[path]`; this target has no tests of its
//! own): small valid samples, shards written with the project's writer, loader options.
#![allow(dead_code)]
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jester_data::{Loader, LoaderOptions, RawSample, ShardWriter};

/// A fresh, empty directory for one test (tests run in parallel in one process).
pub fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jester-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn encoded(width: u32, height: u32, format: image::ImageFormat, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([x as u8 ^ seed, y as u8, seed])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn good(i: usize) -> RawSample {
    RawSample::new(format!("{i:06}"))
        .with("png", encoded(8, 6, image::ImageFormat::Png, i as u8))
        .with("txt", format!("caption number {i}"))
        .with("json", format!("{{\"index\": {i}}}"))
}

pub fn write(
    dir: &Path,
    samples: impl IntoIterator<Item = RawSample>,
    per_shard: usize,
) -> Vec<PathBuf> {
    let mut w = ShardWriter::new(dir, per_shard).unwrap();
    for s in samples {
        w.write(&s).unwrap();
    }
    w.finish().unwrap()
}

/// `bytes` gzip-compressed, as `gzip` or `tar -z` would write them.
pub fn gzipped(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

pub fn identity() -> jester_data::loader::Work<RawSample> {
    Arc::new(Ok)
}

pub fn keys(loader: Loader<RawSample>) -> Vec<String> {
    loader.map(|s| s.unwrap().key).collect()
}

pub fn options(shuffle: bool, workers: usize, epochs: u64, seed: u64) -> LoaderOptions {
    LoaderOptions {
        shuffle,
        shuffle_buffer: 16,
        workers,
        prefetch: 8,
        epochs: Some(epochs),
        seed,
    }
}
