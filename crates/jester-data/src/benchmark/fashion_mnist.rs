//! The Fashion-MNIST scene benchmark (docs/DATA.md §Benchmarks 2): real 28×28 items composed into
//! 56×56 scenes of 1–4 items, with compositional captions ("a red sandal on the left and a blue
//! pullover on the right"). Pool and curated sets use the train split's items, the evaluation set
//! the test split's. Needs `apt-get install -y dataset-fashion-mnist`.
//!
//! Layout: an item sits at one of the nine positions of a 3×3 grid of 14-px steps (top left at
//! (0, 0), centre at (14, 14), …); the items of a scene never overlap (four items: the corners).
//! With `tint` (default) each grey item is coloured with one of ten colours, so that captions are
//! varied enough for in-batch negatives to be true negatives (docs/DATA.md §Benchmarks 1); without
//! it items stay white on black and captions name only class and position.
//!
//! Clusters (docs/DATA.md, "Batch-level structure matters"): cluster k co-occurs `cluster_classes`
//! classes in `cluster_colours` colours; with probability `cluster_strength` a scene takes its
//! items from its cluster's classes and colours, otherwise from all. Zero-shot evaluation: single
//! test items, centred, labelled with their class; templates avoid the article ("an ankle boot").
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use super::fashion_scene::CLASSES;

use super::config::BenchmarkConfig;
use super::fashion_scene::{caption, layouts, FashionScene, Item};
use super::idx::{self, Items};
use super::layout::{write_benchmark, ClassesFile, Summary};
use super::synthetic::other_than;
use super::vocab::{Colour, Position};
use super::world::{Drawn, World, Wrong};
use crate::error::{Error, Result};

/// The zero-shot prompt templates written to `eval/classes.json`.
pub const TEMPLATES: [&str; 4] = [
    "a photo of the {}.",
    "a picture of the {}.",
    "the {}.",
    "a photo of one {}.",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FashionMnistConfig {
    pub benchmark: BenchmarkConfig,
    /// Where the IDX files are (default `/usr/share/datasets/fashion-mnist`).
    pub data_dir: PathBuf,
    /// Width and height of every image (default 56, the native scale; others are resized).
    pub image_size: u32,
    /// Items per scene, uniform in 1..=max_items (default 4, at most 4).
    pub max_items: usize,
    /// Colour each item (default true).
    pub tint: bool,
    /// Classes that co-occur in a cluster (default 3 of 10).
    pub cluster_classes: usize,
    /// Colours of a cluster's items (default 2 of 10).
    pub cluster_colours: usize,
}

impl Default for FashionMnistConfig {
    fn default() -> Self {
        Self {
            benchmark: BenchmarkConfig::default(),
            data_dir: PathBuf::from("/usr/share/datasets/fashion-mnist"),
            image_size: 56,
            max_items: 4,
            tint: true,
            cluster_classes: 3,
            cluster_colours: 2,
        }
    }
}

impl FashionMnistConfig {
    /// A few hundred samples per split: for smoke tests and demos.
    pub fn tiny() -> Self {
        Self {
            benchmark: BenchmarkConfig::tiny(),
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.benchmark.validate()?;
        let bad = |why: String| {
            Err(Error::Config {
                what: "fashion-mnist benchmark config",
                why,
            })
        };
        if !(16..=1024).contains(&self.image_size) {
            return bad(format!(
                "image_size = {} must be in 16..=1024",
                self.image_size
            ));
        }
        if !(1..=4).contains(&self.max_items) {
            return bad(format!("max_items = {} must be in 1..=4", self.max_items));
        }
        if self.max_items < 2 && self.benchmark.eval_single_fraction < 1.0 {
            return bad(
                "multi-item eval scenes need max_items ≥ 2 (or eval_single_fraction = 1)".into(),
            );
        }
        for (name, n) in [
            ("cluster_classes", self.cluster_classes),
            ("cluster_colours", self.cluster_colours),
        ] {
            if !(1..=10).contains(&n) {
                return bad(format!("{name} = {n} must be in 1..=10"));
            }
        }
        Ok(())
    }
}

/// The zero-shot classes ([`CLASSES`]) and [`TEMPLATES`].
pub fn classes() -> ClassesFile {
    ClassesFile {
        classes: CLASSES.iter().map(|c| (*c).to_owned()).collect(),
        templates: TEMPLATES.iter().map(|t| (*t).to_owned()).collect(),
    }
}

/// Writes the benchmark into `out_dir` (new or empty); deterministic for `config.benchmark.seed`.
/// Fails naming `apt-get install -y dataset-fashion-mnist` when the IDX files are missing.
pub fn generate(config: &FashionMnistConfig, out_dir: &Path) -> Result<Summary> {
    config.validate()?;
    let train = idx::load(&config.data_dir, "train", CLASSES.len())?;
    let test = idx::load(&config.data_dir, "t10k", CLASSES.len())?;
    let shared = Shared::new(config);
    let pool_world = FashionWorld {
        items: &train,
        from: "train",
        shared: &shared,
    };
    let eval_world = FashionWorld {
        items: &test,
        from: "test",
        shared: &shared,
    };
    write_benchmark(
        out_dir,
        &config.benchmark,
        config,
        &pool_world,
        &eval_world,
        &classes(),
    )
}

struct Prototype {
    classes: Vec<usize>,
    colours: Vec<Colour>,
}

/// What the train and test worlds share: the clusters and the possible layouts.
struct Shared {
    image_size: u32,
    tint: bool,
    max_items: usize,
    strength: f64,
    prototypes: Vec<Prototype>,
    /// `layouts[n]`: every set of n pairwise non-overlapping positions.
    layouts: Vec<Vec<Vec<Position>>>,
}

impl Shared {
    fn new(config: &FashionMnistConfig) -> Self {
        // Stream 0 of the seed draws the world; the splits use streams 1.. (`Split::stream`).
        let mut rng = ChaCha8Rng::seed_from_u64(config.benchmark.seed);
        let all: Vec<usize> = (0..CLASSES.len()).collect();
        let prototypes = (0..config.benchmark.clusters)
            .map(|_| Prototype {
                classes: all
                    .choose_multiple(&mut rng, config.cluster_classes)
                    .copied()
                    .collect(),
                colours: Colour::ALL
                    .choose_multiple(&mut rng, config.cluster_colours)
                    .copied()
                    .collect(),
            })
            .collect();
        Self {
            layouts: layouts(),
            image_size: config.image_size,
            tint: config.tint,
            max_items: config.max_items,
            strength: config.benchmark.cluster_strength,
            prototypes,
        }
    }
}

struct FashionWorld<'a> {
    items: &'a Items,
    from: &'static str,
    shared: &'a Shared,
}

impl FashionWorld<'_> {
    fn item(
        &self,
        label: usize,
        colour: Option<Colour>,
        position: Position,
        rng: &mut ChaCha8Rng,
    ) -> Item {
        let item = *self.items.by_class[label]
            .choose(rng)
            .expect("every class has items");
        Item {
            label,
            name: CLASSES[label],
            colour,
            position,
            item,
        }
    }
}

impl World for FashionWorld<'_> {
    type Scene = FashionScene;

    fn scene(
        &self,
        cluster: usize,
        min_objects: usize,
        rng: &mut ChaCha8Rng,
    ) -> Drawn<FashionScene> {
        let (shared, prototype) = (self.shared, &self.shared.prototypes[cluster]);
        let from_prototype = rng.gen_bool(shared.strength);
        let n = rng.gen_range(min_objects.min(shared.max_items)..=shared.max_items);
        let layout = shared.layouts[n]
            .choose(rng)
            .expect("corners fit four items")
            .clone();
        let objects = layout
            .into_iter()
            .map(|position| {
                let (label, colours) = if from_prototype {
                    (
                        *prototype.classes.choose(rng).expect("validated"),
                        prototype.colours.as_slice(),
                    )
                } else {
                    (rng.gen_range(0..CLASSES.len()), Colour::ALL.as_slice())
                };
                let colour = shared
                    .tint
                    .then(|| *colours.choose(rng).expect("validated"));
                self.item(label, colour, position, rng)
            })
            .collect();
        Drawn {
            scene: FashionScene {
                objects,
                items_from: self.from,
            },
            from_prototype,
        }
    }

    fn single(&self, class: usize, rng: &mut ChaCha8Rng) -> FashionScene {
        let colour = self
            .shared
            .tint
            .then(|| *Colour::ALL.choose(rng).expect("non-empty"));
        let objects = vec![self.item(class, colour, Position::Centre, rng)];
        FashionScene {
            objects,
            items_from: self.from,
        }
    }

    fn class(&self, scene: &FashionScene) -> Option<usize> {
        match scene.objects.as_slice() {
            [only] => Some(only.label),
            _ => None,
        }
    }

    fn caption(&self, scene: &FashionScene, rng: &mut ChaCha8Rng) -> String {
        caption(scene, rng)
    }

    /// Replaces one item's class (an object replaced) or, with `tint`, possibly its colour.
    fn partly_wrong(&self, scene: &FashionScene, rng: &mut ChaCha8Rng) -> (FashionScene, Wrong) {
        let mut described = scene.clone();
        let k = rng.gen_range(0..scene.objects.len());
        let item = &mut described.objects[k];
        let wrong = match item.colour {
            Some(old) if rng.gen_bool(0.5) => {
                let new = other_than(&Colour::ALL, old, rng);
                item.colour = Some(new);
                Wrong {
                    object: k,
                    attribute: "colour",
                    truth: old.name().into(),
                    caption: new.name().into(),
                }
            }
            _ => {
                let old = item.label;
                let all: Vec<usize> = (0..CLASSES.len()).collect();
                item.label = other_than(&all, old, rng);
                item.name = CLASSES[item.label];
                Wrong {
                    object: k,
                    attribute: "name",
                    truth: CLASSES[old].into(),
                    caption: item.name.into(),
                }
            }
        };
        (described, wrong)
    }

    fn render(&self, scene: &FashionScene, rng: &mut ChaCha8Rng) -> RgbImage {
        let (rows, cols) = (self.items.rows as u32, self.items.cols as u32);
        let mut canvas = RgbImage::new(2 * cols, 2 * rows);
        for item in &scene.objects {
            let colour = item.colour.map_or([255; 3], |c| {
                c.rgb()
                    .map(|v| (v as i32 + rng.gen_range(-10..=10)).clamp(0, 255) as u8)
            });
            let (col, row) = item.position.cell();
            let (x0, y0) = (col * cols / 2, row * rows / 2);
            let pixels = self.items.image(item.item);
            for y in 0..rows {
                for x in 0..cols {
                    let alpha = pixels[(y * cols + x) as usize] as u32;
                    let value = colour.map(|c| (c as u32 * alpha / 255) as u8);
                    canvas.put_pixel(x0 + x, y0 + y, Rgb(value));
                }
            }
        }
        let size = self.shared.image_size;
        if canvas.dimensions() == (size, size) {
            canvas
        } else {
            image::imageops::resize(&canvas, size, size, image::imageops::FilterType::Triangle)
        }
    }
}
