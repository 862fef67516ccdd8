//! The built-in synthetic-scene benchmark (docs/DATA.md §Benchmarks 1): small RGB images of 1–3
//! procedural objects (10 shapes, 10 colours, 2 sizes, 9 positions) on one of 16 backgrounds
//! (4 colours × 4 textures), each with a compositional caption. No download.
//!
//! Clusters (docs/DATA.md, "Batch-level structure matters"): cluster k has a prototype of
//! `cluster_shapes` shapes, `cluster_colours` colours and one background; a scene of cluster k
//! takes its objects' shapes and colours and its background from the prototype with probability
//! `cluster_strength`, otherwise from the whole world. Sizes and positions are always free.
//!
//! Zero-shot evaluation: the classes are the shapes; a single-object eval scene is labelled with
//! its shape, everything else about it uniform, so accuracy measures shape recognition and not
//! the cluster priors. Multi-object eval scenes (2..=`max_objects` objects) serve retrieval.
use std::path::Path;

use rand::seq::{index, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::layout::{write_benchmark, ClassesFile, Summary};
use super::synthetic_render::render;
pub use super::synthetic_scene::{
    Background, BackgroundColour, Object, Scene, Shape, Size, Texture,
};

use super::config::BenchmarkConfig;
use super::synthetic_scene::caption;
use super::vocab::{Colour, Position};
use super::world::{Drawn, World, Wrong};
use crate::error::{Error, Result};

/// The zero-shot prompt templates written to `eval/classes.json`.
pub const TEMPLATES: [&str; 5] = [
    "a photo of a {}.",
    "a picture of a {}.",
    "a {}.",
    "a drawing of a {}.",
    "a {} shape.",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    pub benchmark: BenchmarkConfig,
    /// Width and height of every image, in pixels (default 32).
    pub image_size: u32,
    /// Objects per scene, uniform in 1..=max_objects (default 3; at most 9, one per cell).
    pub max_objects: usize,
    /// Shapes in a cluster's prototype (default 3 of 10).
    pub cluster_shapes: usize,
    /// Colours in a cluster's prototype (default 3 of 10).
    pub cluster_colours: usize,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            benchmark: BenchmarkConfig::default(),
            image_size: 32,
            max_objects: 3,
            cluster_shapes: 3,
            cluster_colours: 3,
        }
    }
}

impl SyntheticConfig {
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
                what: "synthetic benchmark config",
                why,
            })
        };
        if !(12..=1024).contains(&self.image_size) {
            return bad(format!(
                "image_size = {} must be in 12..=1024",
                self.image_size
            ));
        }
        if !(1..=9).contains(&self.max_objects) {
            return bad(format!(
                "max_objects = {} must be in 1..=9",
                self.max_objects
            ));
        }
        if self.max_objects < 2 && self.benchmark.eval_single_fraction < 1.0 {
            return bad(
                "multi-object eval scenes need max_objects ≥ 2 (or eval_single_fraction = 1)"
                    .into(),
            );
        }
        for (name, n, most) in [
            ("cluster_shapes", self.cluster_shapes, Shape::ALL.len()),
            ("cluster_colours", self.cluster_colours, Colour::ALL.len()),
        ] {
            if !(1..=most).contains(&n) {
                return bad(format!("{name} = {n} must be in 1..={most}"));
            }
        }
        Ok(())
    }
}

/// The zero-shot classes (the shape names, in [`Shape::ALL`] order) and [`TEMPLATES`].
pub fn classes() -> ClassesFile {
    ClassesFile {
        classes: Shape::ALL.iter().map(|s| s.name().to_owned()).collect(),
        templates: TEMPLATES.iter().map(|t| (*t).to_owned()).collect(),
    }
}

/// Writes the benchmark into `out_dir` (new or empty); deterministic for `config.benchmark.seed`.
pub fn generate(config: &SyntheticConfig, out_dir: &Path) -> Result<Summary> {
    config.validate()?;
    let world = SyntheticWorld::new(config);
    write_benchmark(
        out_dir,
        &config.benchmark,
        config,
        &world,
        &world,
        &classes(),
    )
}

struct Prototype {
    shapes: Vec<Shape>,
    colours: Vec<Colour>,
    background: Background,
}

struct SyntheticWorld {
    image_size: u32,
    max_objects: usize,
    strength: f64,
    prototypes: Vec<Prototype>,
}

impl SyntheticWorld {
    fn new(config: &SyntheticConfig) -> Self {
        // Stream 0 of the seed draws the world; the splits use streams 1.. (`Split::stream`).
        let mut rng = ChaCha8Rng::seed_from_u64(config.benchmark.seed);
        let prototypes = (0..config.benchmark.clusters)
            .map(|_| Prototype {
                shapes: Shape::ALL
                    .choose_multiple(&mut rng, config.cluster_shapes)
                    .copied()
                    .collect(),
                colours: Colour::ALL
                    .choose_multiple(&mut rng, config.cluster_colours)
                    .copied()
                    .collect(),
                background: any_background(&mut rng),
            })
            .collect();
        Self {
            image_size: config.image_size,
            max_objects: config.max_objects,
            strength: config.benchmark.cluster_strength,
            prototypes,
        }
    }
}

impl World for SyntheticWorld {
    type Scene = Scene;

    fn scene(&self, cluster: usize, min_objects: usize, rng: &mut ChaCha8Rng) -> Drawn<Scene> {
        let prototype = &self.prototypes[cluster];
        let from_prototype = rng.gen_bool(self.strength);
        let n = rng.gen_range(min_objects.min(self.max_objects)..=self.max_objects);
        let objects = index::sample(rng, Position::ALL.len(), n)
            .into_iter()
            .map(|cell| {
                let (shapes, colours): (&[Shape], &[Colour]) = if from_prototype {
                    (&prototype.shapes, &prototype.colours)
                } else {
                    (&Shape::ALL, &Colour::ALL)
                };
                Object {
                    shape: *shapes.choose(rng).expect("validated non-empty"),
                    colour: *colours.choose(rng).expect("validated non-empty"),
                    size: any_size(rng),
                    position: Position::ALL[cell],
                }
            })
            .collect();
        let background = if from_prototype {
            prototype.background
        } else {
            any_background(rng)
        };
        Drawn {
            scene: Scene {
                objects,
                background,
            },
            from_prototype,
        }
    }

    fn single(&self, class: usize, rng: &mut ChaCha8Rng) -> Scene {
        let object = Object {
            shape: Shape::ALL[class],
            colour: *Colour::ALL.choose(rng).expect("non-empty"),
            size: any_size(rng),
            position: *Position::ALL.choose(rng).expect("non-empty"),
        };
        Scene {
            objects: vec![object],
            background: any_background(rng),
        }
    }

    fn class(&self, scene: &Scene) -> Option<usize> {
        match scene.objects.as_slice() {
            [only] => Some(only.shape.index()),
            _ => None,
        }
    }

    fn caption(&self, scene: &Scene, rng: &mut ChaCha8Rng) -> String {
        caption(scene, rng)
    }

    /// Replaces one object's shape, colour, size or position (to a free cell) with another value.
    fn partly_wrong(&self, scene: &Scene, rng: &mut ChaCha8Rng) -> (Scene, Wrong) {
        let mut described = scene.clone();
        let k = rng.gen_range(0..scene.objects.len());
        let free: Vec<Position> = Position::ALL
            .into_iter()
            .filter(|p| scene.objects.iter().all(|o| o.position != *p))
            .collect();
        let attributes: &[&'static str] = if free.is_empty() {
            &["shape", "colour", "size"]
        } else {
            &["shape", "colour", "size", "position"]
        };
        let attribute = *attributes.choose(rng).expect("non-empty");
        let object = &mut described.objects[k];
        let (truth, caption) = match attribute {
            "shape" => {
                let old = object.shape;
                object.shape = other_than(&Shape::ALL, old, rng);
                (old.name(), object.shape.name())
            }
            "colour" => {
                let old = object.colour;
                object.colour = other_than(&Colour::ALL, old, rng);
                (old.name(), object.colour.name())
            }
            "size" => {
                let old = object.size;
                object.size = if old == Size::Small {
                    Size::Large
                } else {
                    Size::Small
                };
                (old.name(), object.size.name())
            }
            _ => {
                let old = object.position;
                object.position = *free.choose(rng).expect("non-empty");
                (old.name(), object.position.name())
            }
        };
        let wrong = Wrong {
            object: k,
            attribute,
            truth: truth.into(),
            caption: caption.into(),
        };
        (described, wrong)
    }

    fn render(&self, scene: &Scene, rng: &mut ChaCha8Rng) -> image::RgbImage {
        render(scene, self.image_size, rng)
    }
}

fn any_size(rng: &mut ChaCha8Rng) -> Size {
    if rng.gen_bool(0.5) {
        Size::Small
    } else {
        Size::Large
    }
}

fn any_background(rng: &mut ChaCha8Rng) -> Background {
    Background {
        colour: *BackgroundColour::ALL.choose(rng).expect("non-empty"),
        texture: *Texture::ALL.choose(rng).expect("non-empty"),
    }
}

/// A uniformly drawn value of `all` other than `old`.
pub(crate) fn other_than<T: Copy + PartialEq>(all: &[T], old: T, rng: &mut impl Rng) -> T {
    let others: Vec<T> = all.iter().copied().filter(|&x| x != old).collect();
    *others.choose(rng).expect("at least two values")
}
