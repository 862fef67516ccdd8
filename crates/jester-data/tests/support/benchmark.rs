//! Helpers shared by the benchmark tests (included with `#[path]`; this target has no tests of
//! its own). Shards are read back with the `tar` crate directly, independent of the project's
//! shard reader.
#![allow(dead_code)]
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jester_data::benchmark::synthetic::{self, SyntheticConfig};
use jester_data::benchmark::{BenchmarkConfig, Summary};
use rand::seq::index;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

pub struct Sample {
    pub key: String,
    pub png: Vec<u8>,
    pub txt: String,
    pub meta: Value,
}

impl Sample {
    pub fn noise(&self) -> &str {
        self.meta["noise"].as_str().unwrap()
    }
    pub fn image(&self) -> image::RgbImage {
        image::load_from_memory(&self.png).unwrap().to_rgb8()
    }
}

/// Every sample of a split folder, in shard and key order.
pub fn read_split(dir: &Path) -> Vec<Sample> {
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    shards.sort();
    let mut members: Vec<(String, String, Vec<u8>)> = Vec::new();
    for shard in shards {
        let mut archive = tar::Archive::new(std::fs::File::open(shard).unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let (key, ext) = name.split_once('.').unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            members.push((key.to_owned(), ext.to_owned(), bytes));
        }
    }
    let mut samples: Vec<Sample> = Vec::new();
    for (key, ext, bytes) in members {
        if samples.last().is_none_or(|s| s.key != key) {
            samples.push(Sample {
                key: key.clone(),
                png: vec![],
                txt: String::new(),
                meta: Value::Null,
            });
        }
        let sample = samples.last_mut().unwrap();
        match ext.as_str() {
            "png" => sample.png = bytes,
            "txt" => sample.txt = String::from_utf8(bytes).unwrap(),
            "json" => sample.meta = serde_json::from_slice(&bytes).unwrap(),
            other => panic!("unexpected member {key}.{other}"),
        }
    }
    samples
}

/// An empty folder path under the target's temporary folder, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// The path, no longer removed on drop.
    pub fn keep(self) -> PathBuf {
        let path = self.0.clone();
        std::mem::forget(self);
        path
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn fresh_dir(name: &str) -> Scratch {
    // One folder per test process: test targets, and other runs of them, may run side by side.
    static SWEPT: OnceLock<()> = OnceLock::new();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let prefix = format!("{}-", env!("CARGO_CRATE_NAME"));
    SWEPT.get_or_init(|| sweep_dead_processes(root, &prefix));
    let dir = root
        .join(format!("{prefix}{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    Scratch(dir)
}

/// Removes the folders `{prefix}{pid}` of finished test processes (the shared benchmark is kept
/// for its process's lifetime), where `/proc` tells which processes live.
fn sweep_dead_processes(root: &Path, prefix: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(prefix)
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn small_config() -> SyntheticConfig {
    SyntheticConfig {
        benchmark: BenchmarkConfig {
            pool: 3_000,
            curated: 800,
            eval: 400,
            samples_per_shard: 700,
            ..BenchmarkConfig::default()
        },
        ..SyntheticConfig::default()
    }
}

/// One generated benchmark shared by the read-only tests.
pub fn generated() -> &'static (PathBuf, Summary) {
    static GENERATED: OnceLock<(PathBuf, Summary)> = OnceLock::new();
    GENERATED.get_or_init(|| {
        let dir = fresh_dir("synthetic-shared").keep();
        let summary = synthetic::generate(&small_config(), &dir).unwrap();
        (dir, summary)
    })
}

pub fn split(name: &str) -> Vec<Sample> {
    read_split(&generated().0.join(name))
}

/// Every file under `root`, by its path relative to `root`.
pub fn all_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path.strip_prefix(root).unwrap().to_owned(), bytes);
            }
        }
    }
    files
}

/// Mean |difference| of horizontally adjacent channel values: ~77 for the noise corruption,
/// far lower for drawn scenes.
pub fn roughness(image: &image::RgbImage) -> f64 {
    let (w, h) = image.dimensions();
    let mut total = 0.0;
    for y in 0..h {
        for x in 1..w {
            let (a, b) = (image.get_pixel(x - 1, y).0, image.get_pixel(x, y).0);
            total += (0..3)
                .map(|c| (a[c] as f64 - b[c] as f64).abs())
                .sum::<f64>();
        }
    }
    total / ((w - 1) * h * 3) as f64
}

/// The largest per-channel standard deviation over the image.
pub fn spread(image: &image::RgbImage) -> f64 {
    (0..3)
        .map(|c| {
            let values: Vec<f64> = image.pixels().map(|p| p.0[c] as f64).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
        })
        .fold(0.0, f64::max)
}

/// docs/DATA.md: "two random examples almost never share a caption (in-batch negatives must be true
/// negatives)". Over `batches` random batches of 256 (without replacement): the fraction of
/// samples whose caption another sample of the same batch has too, and the number of batches
/// with any such pair.
pub fn duplicate_caption_rate(captions: &[String], batches: usize) -> (f64, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (mut duplicated, mut with_any) = (0, 0);
    for _ in 0..batches {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for i in index::sample(&mut rng, captions.len(), 256) {
            *counts.entry(captions[i].as_str()).or_default() += 1;
        }
        let shared: usize = counts.values().filter(|&&c| c > 1).sum();
        duplicated += shared;
        with_any += usize::from(shared > 0);
    }
    (duplicated as f64 / (batches * 256) as f64, with_any)
}
