//! Writing one split as shards: draw every sample's clean scene first, then apply its noise kind
//! (which may need another sample's caption or image), encode, write. Shared by both generators.
use std::collections::BTreeMap;
use std::path::Path;

use image::{ImageEncoder, RgbImage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::config::{BenchmarkConfig, Split};
use super::corrupt::{corrupt_image, near_copy, perturb_caption, uninformative_caption};
use super::noise::{assign_kinds, NoiseKind, NoiseRates};
use super::world::World;
use crate::error::{Error, Result};
use crate::{RawSample, ShardWriter};

/// What one split holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSummary {
    pub samples: usize,
    pub shards: usize,
    /// Samples of each noise kind (every kind listed, zeros included).
    pub noise: BTreeMap<NoiseKind, usize>,
}

/// A sample's clean draw, before noise.
struct Planned<S> {
    scene: S,
    cluster: Option<usize>,
    from_prototype: bool,
    caption: String,
    caption_seed: u64,
    render_seed: u64,
}

/// The raw pool or a curated set: `size` samples, noise kinds at `rates`.
pub(crate) fn write_noisy_split<W: World>(
    world: &W,
    split: Split,
    size: usize,
    rates: &NoiseRates,
    config: &BenchmarkConfig,
    dir: &Path,
) -> Result<SplitSummary> {
    let mut rng = split_rng(config.seed, split);
    let kinds = assign_kinds(size, rates, &mut rng);
    let plans: Vec<Planned<W::Scene>> = (0..size)
        .map(|_| {
            let cluster = rng.gen_range(0..config.clusters);
            plan(
                world,
                Draw::Scene {
                    cluster,
                    min_objects: 1,
                },
                &mut rng,
            )
        })
        .collect();
    let clean: Vec<usize> = (0..size)
        .filter(|&i| kinds[i] == NoiseKind::Clean)
        .collect();
    // Whose scene each sample shows: its own, or for a near-duplicate the sample it copies.
    let shows: Vec<usize> = (0..size)
        .map(|i| match kinds[i] {
            NoiseKind::NearDuplicate => duplicate_source(i, &clean, size, &mut rng),
            _ => i,
        })
        .collect();

    let mut writer = ShardWriter::new(dir, config.samples_per_shard)?;
    for (i, (&kind, own)) in kinds.iter().zip(&plans).enumerate() {
        let mut extra = Map::new();
        let (image, caption, truth) = match kind {
            NoiseKind::Clean => (render(world, own), own.caption.clone(), own),
            NoiseKind::Misaligned => {
                let j = other(i, size, &mut rng);
                extra.insert("caption_of".into(), json!(key(j)));
                (render(world, own), plans[shows[j]].caption.clone(), own)
            }
            NoiseKind::PartlyWrong => {
                let (described, wrong) = world.partly_wrong(&own.scene, &mut rng);
                let caption =
                    world.caption(&described, &mut ChaCha8Rng::seed_from_u64(own.caption_seed));
                extra.insert("wrong".into(), json!(wrong));
                (render(world, own), caption, own)
            }
            NoiseKind::Uninformative => (render(world, own), uninformative_caption(&mut rng), own),
            NoiseKind::CorruptedImage => {
                let (image, corruption) = corrupt_image(&render(world, own), &mut rng);
                extra.insert("corruption".into(), json!(corruption));
                (image, own.caption.clone(), own)
            }
            NoiseKind::NearDuplicate => {
                let j = shows[i];
                let source = &plans[j];
                let (image, shift) = near_copy(&render(world, source), &mut rng);
                let perturbed = rng.gen_bool(0.5);
                let caption = if perturbed {
                    perturb_caption(&source.caption, &mut rng)
                } else {
                    source.caption.clone()
                };
                extra.insert("duplicate_of".into(), json!(key(j)));
                extra.insert("caption_perturbed".into(), json!(perturbed));
                extra.insert("shift".into(), json!([shift.0, shift.1]));
                (image, caption, source)
            }
        };
        let mut meta = metadata(world, truth, split, kind)?;
        meta.extend(extra);
        writer.write(&sample(i, &image, &caption, &meta)?)?;
    }
    summary(writer, &kinds)
}

/// The clean evaluation set: a shuffled mix of single-object scenes, classes balanced, for
/// zero-shot classification, and clustered multi-object scenes for retrieval.
pub(crate) fn write_eval_split<W: World>(
    world: &W,
    classes: usize,
    config: &BenchmarkConfig,
    dir: &Path,
) -> Result<SplitSummary> {
    let mut rng = split_rng(config.seed, Split::Eval);
    let singles = (config.eval as f64 * config.eval_single_fraction).round() as usize;
    let mut roles: Vec<Option<usize>> = (0..config.eval)
        .map(|i| (i < singles).then_some(i % classes))
        .collect();
    roles.shuffle(&mut rng);
    let kinds = vec![NoiseKind::Clean; config.eval];
    let mut writer = ShardWriter::new(dir, config.samples_per_shard)?;
    for (i, role) in roles.into_iter().enumerate() {
        let planned = match role {
            Some(class) => plan(world, Draw::Single { class }, &mut rng),
            None => {
                let cluster = rng.gen_range(0..config.clusters);
                plan(
                    world,
                    Draw::Scene {
                        cluster,
                        min_objects: 2,
                    },
                    &mut rng,
                )
            }
        };
        let meta = metadata(world, &planned, Split::Eval, NoiseKind::Clean)?;
        writer.write(&sample(
            i,
            &render(world, &planned),
            &planned.caption,
            &meta,
        )?)?;
    }
    summary(writer, &kinds)
}

/// How a clean sample is drawn.
enum Draw {
    /// From a cluster, as the pool is (evaluation retrieval scenes ask for two objects or more).
    Scene { cluster: usize, min_objects: usize },
    /// One object of a zero-shot class, for evaluation.
    Single { class: usize },
}

fn plan<W: World>(world: &W, draw: Draw, rng: &mut ChaCha8Rng) -> Planned<W::Scene> {
    let (scene, cluster, from_prototype) = match draw {
        Draw::Single { class } => (world.single(class, rng), None, false),
        Draw::Scene {
            cluster,
            min_objects,
        } => {
            let drawn = world.scene(cluster, min_objects, rng);
            (drawn.scene, Some(cluster), drawn.from_prototype)
        }
    };
    let (caption_seed, render_seed) = (rng.gen(), rng.gen());
    let caption = world.caption(&scene, &mut ChaCha8Rng::seed_from_u64(caption_seed));
    Planned {
        scene,
        cluster,
        from_prototype,
        caption,
        caption_seed,
        render_seed,
    }
}

fn render<W: World>(world: &W, planned: &Planned<W::Scene>) -> RgbImage {
    world.render(
        &planned.scene,
        &mut ChaCha8Rng::seed_from_u64(planned.render_seed),
    )
}

/// The ground truth every sample carries (docs/DATA.md: each example carries its noise kind).
fn metadata<W: World>(
    world: &W,
    planned: &Planned<W::Scene>,
    split: Split,
    kind: NoiseKind,
) -> Result<Map<String, Value>> {
    let scene = serde_json::to_value(&planned.scene).map_err(|e| Error::Encode {
        what: "scene metadata",
        why: e.to_string(),
    })?;
    let mut meta = match scene {
        Value::Object(fields) => fields,
        other => Map::from_iter([("scene".to_owned(), other)]),
    };
    meta.insert("noise".into(), json!(kind));
    meta.insert("split".into(), json!(split));
    meta.insert("cluster".into(), json!(planned.cluster));
    meta.insert("from_prototype".into(), json!(planned.from_prototype));
    meta.insert("class".into(), json!(world.class(&planned.scene)));
    meta.insert("clean_caption".into(), json!(planned.caption));
    Ok(meta)
}

fn sample(
    index: usize,
    image: &RgbImage,
    caption: &str,
    meta: &Map<String, Value>,
) -> Result<RawSample> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Encode {
            what: "benchmark image as PNG",
            why: e.to_string(),
        })?;
    let json = serde_json::to_vec(meta).map_err(|e| Error::Encode {
        what: "sample metadata",
        why: e.to_string(),
    })?;
    Ok(RawSample::new(key(index))
        .with("png", png)
        .with("txt", caption)
        .with("json", json))
}

fn summary(writer: ShardWriter, kinds: &[NoiseKind]) -> Result<SplitSummary> {
    let samples = writer.samples();
    let shards = writer.finish()?.len();
    let mut noise: BTreeMap<NoiseKind, usize> = NoiseKind::ALL.iter().map(|&k| (k, 0)).collect();
    for kind in kinds {
        *noise.get_mut(kind).expect("all kinds") += 1;
    }
    Ok(SplitSummary {
        samples,
        shards,
        noise,
    })
}

/// The sample key: the index, zero-padded to nine digits.
pub(crate) fn key(index: usize) -> String {
    format!("{index:09}")
}

fn split_rng(seed: u64, split: Split) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(split.stream());
    rng
}

/// A uniformly drawn index other than `i` (itself only in a one-sample split).
fn other(i: usize, n: usize, rng: &mut impl Rng) -> usize {
    if n < 2 {
        return i;
    }
    let j = rng.gen_range(0..n - 1);
    if j >= i {
        j + 1
    } else {
        j
    }
}

/// What a near-duplicate copies: an earlier clean sample, as a re-upload copies what was there
/// before; any clean sample if none is earlier; the clean version of any other sample if none is
/// clean (a split with no clean samples at all).
fn duplicate_source(i: usize, clean: &[usize], n: usize, rng: &mut impl Rng) -> usize {
    let earlier = clean.partition_point(|&c| c < i);
    if earlier > 0 {
        clean[rng.gen_range(0..earlier)]
    } else if !clean.is_empty() {
        clean[rng.gen_range(0..clean.len())]
    } else {
        other(i, n, rng)
    }
}
