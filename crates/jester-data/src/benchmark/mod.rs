//! The benchmarks with known noise (docs/DATA.md §Benchmarks): a raw pool, curated sets at three
//! curation levels and a clean evaluation set, written as ordinary shards with the ground truth
//! in each sample's `.json`.
//!
//! Two generators share everything but their world: [`synthetic`] (procedural shapes, built in)
//! and [`fashion_mnist`] (tiles of real Fashion-MNIST items). Each writes the folder `DIR`:
//!
//! ```text
//! DIR/pool/*.tar              the raw pool, noise at `pool_noise` rates
//! DIR/curated-strong/*.tar    curated sets for the reference model, noise at `curated_noise` rates
//! DIR/curated-moderate/*.tar
//! DIR/curated-weak/*.tar
//! DIR/eval/*.tar              clean: single-object scenes (zero-shot classes) + multi-object scenes
//! DIR/eval/classes.json       {"classes": [...], "templates": ["a photo of a {}.", ...]}
//! DIR/config.json             the resolved config
//! DIR/summary.json            samples, shards and noise kinds per split
//! ```
//!
//! Each sample is `KEY.png`, `KEY.txt` (caption), `KEY.json` (ground truth, so reports can show
//! what a selection kept). Keys are `000000000`, `000000001`, … within each split. The `.json`:
//! - `noise` ([`NoiseKind`]), `split` ([`Split`]);
//! - `cluster` (null for eval single-object scenes), `from_prototype` (drawn from the cluster's
//!   prototype rather than the whole world);
//! - `class`: the zero-shot class index of a one-object scene (any split), else null;
//! - `clean_caption`: the caption the image deserves; the scene itself (`objects`, and
//!   `background` or `items_from`), describing the image;
//! - what the noise did: `caption_of` (misaligned: whose clean caption it took), `wrong`
//!   (partly-wrong: `{object, attribute, truth, caption}`), `corruption` (`noise`, `blank`,
//!   `near-blank`), `duplicate_of`, `caption_perturbed`, `shift` (near-duplicate; the scene
//!   fields are then the copied sample's).
//!
//! Batch-level structure (docs/DATA.md, "Batch-level structure matters"): each scene belongs to one of
//! `clusters` clusters; with probability `cluster_strength` its objects and attributes come from
//! the cluster's prototype (a few shapes/classes, colours, a background), otherwise from the whole
//! world. Near-duplicates add the other kind of web redundancy.
pub mod fashion_mnist;
pub mod synthetic;

mod config;
mod corrupt;
mod fashion_scene;
mod idx;
mod layout;
mod noise;
mod split;
mod synthetic_render;
mod synthetic_scene;
mod text;
mod vocab;
mod world;

pub use config::{BenchmarkConfig, Split};
pub use layout::{ClassesFile, Summary};
pub use noise::{CuratedNoise, CurationLevel, NoiseKind, NoiseRates};
pub use split::SplitSummary;
pub use vocab::{Colour, Position};
