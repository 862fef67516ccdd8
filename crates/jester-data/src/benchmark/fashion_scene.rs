//! What a Fashion-MNIST scene is made of (docs/DATA.md §Benchmarks 2): 1–4 real items, each with a
//! class, an optional tint and a position, and its compositional captions ("a red sandal on the
//! left and a blue pullover on the right"): six item phrasings and eight sentence frames.
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::text::{article, count_word, join_list, plural};
use super::vocab::{Colour, Position};

/// The ten classes, label order, as captions and prompts name them.
pub const CLASSES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// One item of a scene: its class, tint, position and index in its Fashion-MNIST split.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Item {
    pub label: usize,
    pub name: &'static str,
    pub colour: Option<Colour>,
    pub position: Position,
    pub item: usize,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct FashionScene {
    pub objects: Vec<Item>,
    /// The Fashion-MNIST split the items come from: `train` or `test`.
    pub items_from: &'static str,
}

/// A caption naming every item's colour (with `tint`), class and position, in random order.
pub(crate) fn caption(scene: &FashionScene, rng: &mut ChaCha8Rng) -> String {
    let (form, frame) = (rng.gen_range(0..6), rng.gen_range(0..8));
    let mut order: Vec<&Item> = scene.objects.iter().collect();
    order.shuffle(rng);
    let phrases: Vec<String> = order.iter().map(|item| item_phrase(item, form)).collect();
    let (list, n) = (join_list(&phrases), scene.objects.len());
    match frame {
        0 => list,
        1 => format!("{} {}: {list}", count_word(n), plural(n, "item", "items")),
        2 => format!("a photo of {list}"),
        3 => format!(
            "{} fashion {}: {list}",
            count_word(n),
            plural(n, "item", "items")
        ),
        4 => format!("a product photo with {list}"),
        5 => format!("{list} on a black background"),
        6 => format!("there {} {list}", plural(n, "is", "are")),
        _ => format!("catalogue image: {list}"),
    }
}

/// "a red sandal on the left", "a sandal in red shown on the left", "a red sandal (left)", …
fn item_phrase(item: &Item, form: u32) -> String {
    let described = match item.colour {
        Some(colour) if form % 2 == 1 => format!("{} in {}", item.name, colour.name()),
        Some(colour) => format!("{} {}", colour.name(), item.name),
        None => item.name.to_owned(),
    };
    let a = article(&described);
    match form / 2 {
        0 => format!("{a} {described} {}", item.position.phrase()),
        1 => format!("{a} {described} shown {}", item.position.phrase()),
        _ => format!("{a} {described} ({})", item.position.name()),
    }
}

/// `layouts()[n]`: every set of n pairwise non-overlapping positions (items are 2 grid steps
/// wide), for n ≤ 4.
pub(crate) fn layouts() -> Vec<Vec<Vec<Position>>> {
    let mut layouts = vec![Vec::new(); 5];
    for mask in 1u32..(1 << 9) {
        let set: Vec<Position> = (0..9usize)
            .filter(|&b| (mask >> b) & 1 == 1)
            .map(|b| Position::ALL[b])
            .collect();
        let apart = |a: Position, b: Position| {
            let ((ca, ra), (cb, rb)) = (a.cell(), b.cell());
            ca.abs_diff(cb) >= 2 || ra.abs_diff(rb) >= 2
        };
        let disjoint = set
            .iter()
            .enumerate()
            .all(|(i, &a)| set[i + 1..].iter().all(|&b| apart(a, b)));
        if disjoint && set.len() <= 4 {
            layouts[set.len()].push(set);
        }
    }
    layouts
}
