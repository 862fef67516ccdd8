//! `jester shards inspect`: what a shard set holds — counts, caption and image size statistics,
//! bad samples by reason, the ground-truth noise kinds when samples carry them, and a contact sheet.
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use image::RgbImage;

use crate::decode::{decode, DecodeOptions};
use crate::error::Result;
use crate::loader::{Loader, LoaderOptions};
use crate::skip::SkipCounts;

/// Minimum, mean and maximum of a quantity over the samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    #[serde(skip)]
    count: u64,
}

impl Stats {
    fn add(&mut self, x: f64) {
        if self.count == 0 {
            (self.min, self.max) = (x, x);
        }
        self.count += 1;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.mean += (x - self.mean) / self.count as f64;
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct InspectReport {
    pub shards: usize,
    pub samples: u64,
    pub skipped: SkipCounts,
    pub caption_chars: Stats,
    pub caption_words: Stats,
    pub distinct_captions: u64,
    pub image_width: Stats,
    pub image_height: Stats,
    /// Samples by the `noise` field of their `.json` (the benchmarks' ground truth), if any.
    pub noise: BTreeMap<String, u64>,
}

/// Reads every sample of `shards` once, in order; returns the report and the first `sheet`
/// samples (image, caption) for a contact sheet.
pub fn inspect(
    shards: Vec<PathBuf>,
    workers: usize,
    sheet: usize,
) -> Result<(InspectReport, Vec<(RgbImage, String)>)> {
    let options = LoaderOptions {
        shuffle: false,
        epochs: Some(1),
        workers,
        ..LoaderOptions::default()
    };
    let mut report = InspectReport {
        shards: shards.len(),
        ..Default::default()
    };
    let work = Arc::new(|raw| decode(&raw, &DecodeOptions::default()));
    let mut loader = Loader::new(shards, &options, work, None)?;
    let mut first = Vec::new();
    // Distinct captions by hash: 8 bytes a sample, not the captions themselves.
    let mut captions = HashSet::new();
    for sample in loader.by_ref() {
        let s = sample?;
        report.samples += 1;
        report.caption_chars.add(s.caption.chars().count() as f64);
        report
            .caption_words
            .add(s.caption.split_whitespace().count() as f64);
        captions.insert(fnv1a(s.caption.as_bytes()));
        report.image_width.add(s.image.width() as f64);
        report.image_height.add(s.image.height() as f64);
        if let Some(noise) = s
            .meta
            .as_ref()
            .and_then(|m| m.get("noise"))
            .and_then(|n| n.as_str())
        {
            *report.noise.entry(noise.to_owned()).or_default() += 1;
        }
        if first.len() < sheet {
            first.push((s.image, s.caption));
        }
    }
    report.skipped = loader.skipped().clone();
    report.distinct_captions = captions.len() as u64;
    Ok((report, first))
}

/// FNV-1a, 64 bits: stable across platforms and versions (unlike std's hasher), so it can also
/// decide splits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
