//! What a synthetic scene is made of (docs/DATA.md §Benchmarks 1: shape, colour, size, position,
//! background) and its compositional captions.
//!
//! A caption names every object's size, colour, shape and position, in random order, with one of
//! six object phrasings and nine sentence frames (some naming the background), so two random
//! scenes almost never share a caption: in-batch negatives must be true negatives.
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::text::{article, count_word, join_list, plural};
use super::vocab::{Colour, Position};

/// The shapes; the zero-shot classes of the synthetic benchmark, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Ring,
    Cross,
    Diamond,
    Heart,
    Hexagon,
    Crescent,
}

impl Shape {
    pub const ALL: [Shape; 10] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Star,
        Shape::Ring,
        Shape::Cross,
        Shape::Diamond,
        Shape::Heart,
        Shape::Hexagon,
        Shape::Crescent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Ring => "ring",
            Shape::Cross => "cross",
            Shape::Diamond => "diamond",
            Shape::Heart => "heart",
            Shape::Hexagon => "hexagon",
            Shape::Crescent => "crescent",
        }
    }

    /// The zero-shot class index.
    pub fn index(self) -> usize {
        Shape::ALL.iter().position(|&s| s == self).expect("in ALL")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Size {
    Small,
    Large,
}

impl Size {
    pub fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }
}

/// Background colours: dark or grey, so every object colour stays visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackgroundColour {
    Black,
    DarkGrey,
    LightGrey,
    Navy,
}

impl BackgroundColour {
    pub const ALL: [BackgroundColour; 4] = [
        BackgroundColour::Black,
        BackgroundColour::DarkGrey,
        BackgroundColour::LightGrey,
        BackgroundColour::Navy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackgroundColour::Black => "black",
            BackgroundColour::DarkGrey => "dark grey",
            BackgroundColour::LightGrey => "light grey",
            BackgroundColour::Navy => "navy",
        }
    }

    pub fn rgb(self) -> [u8; 3] {
        match self {
            BackgroundColour::Black => [15, 15, 15],
            BackgroundColour::DarkGrey => [70, 70, 70],
            BackgroundColour::LightGrey => [175, 175, 175],
            BackgroundColour::Navy => [20, 28, 75],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Texture {
    Plain,
    Striped,
    Checked,
    Speckled,
}

impl Texture {
    pub const ALL: [Texture; 4] = [
        Texture::Plain,
        Texture::Striped,
        Texture::Checked,
        Texture::Speckled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Texture::Plain => "plain",
            Texture::Striped => "striped",
            Texture::Checked => "checked",
            Texture::Speckled => "speckled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Object {
    pub shape: Shape,
    pub colour: Colour,
    pub size: Size,
    /// Each object has its own cell of the 3×3 grid.
    pub position: Position,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Background {
    pub colour: BackgroundColour,
    pub texture: Texture,
}

/// The ground truth of a synthetic image; objects are drawn in this order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scene {
    pub objects: Vec<Object>,
    pub background: Background,
}

/// A caption naming every object. Draws the same number of values from `rng` for any scene
/// with the same number of objects (the partly-wrong noise relies on it, `World::caption`).
pub(crate) fn caption(scene: &Scene, rng: &mut ChaCha8Rng) -> String {
    let form = rng.gen_range(0..6);
    let frame = rng.gen_range(0..9);
    let mut order: Vec<&Object> = scene.objects.iter().collect();
    order.shuffle(rng);
    let objects: Vec<String> = order.iter().map(|o| object_phrase(o, form)).collect();
    let list = join_list(&objects);
    let n = scene.objects.len();
    let background = format!(
        "{} {}",
        scene.background.texture.name(),
        scene.background.colour.name()
    );
    match frame {
        0 => list,
        1 => format!(
            "{} {}: {list}",
            count_word(n),
            plural(n, "object", "objects")
        ),
        2 => format!("a picture of {list}"),
        3 => format!("{list} on a {background} background"),
        4 => format!("a {background} background with {list}"),
        5 => format!("there {} {list}", plural(n, "is", "are")),
        6 => format!("{list}, {background} background"),
        7 => format!(
            "{} {} on {background}: {list}",
            count_word(n),
            plural(n, "shape", "shapes")
        ),
        _ => format!("a photo of {list}"),
    }
}

fn object_phrase(o: &Object, form: u32) -> String {
    let (size, colour, shape, place) = (
        o.size.name(),
        o.colour.name(),
        o.shape.name(),
        o.position.phrase(),
    );
    match form {
        0 => format!("{} {size} {colour} {shape} {place}", article(size)),
        1 => format!("{} {size} {shape} in {colour} {place}", article(size)),
        2 => format!("{} {colour} {size} {shape} {place}", article(colour)),
        3 => format!("{} {size} {colour} {shape} located {place}", article(size)),
        4 => format!("{} {size} {colour} {shape} placed {place}", article(size)),
        _ => format!(
            "{} {size} {colour} {shape} ({})",
            article(size),
            o.position.name()
        ),
    }
}
