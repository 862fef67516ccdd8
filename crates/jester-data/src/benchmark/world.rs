//! What a generator's world gives the shared split writer: scenes drawn from clusters, their
//! captions and images, and the one-attribute edits that make a caption partly wrong.
use image::RgbImage;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// A scene drawn for a sample, and whether it came from its cluster's prototype.
pub(crate) struct Drawn<S> {
    pub scene: S,
    pub from_prototype: bool,
}

/// What a partly-wrong caption changed: field `attribute` of `objects[object]` in the sample's
/// `.json` (e.g. `colour`) reads `caption` in the caption instead of `truth`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Wrong {
    pub object: usize,
    pub attribute: &'static str,
    pub truth: String,
    pub caption: String,
}

pub(crate) trait World {
    /// The ground truth of one image; serialises to an object whose fields (e.g. `objects`,
    /// `background`) are merged into the sample's `.json`.
    type Scene: Clone + Serialize;

    /// A clean scene of `cluster` with at least `min_objects` objects: with probability
    /// `cluster_strength` from the cluster's prototype, otherwise from the whole world.
    fn scene(&self, cluster: usize, min_objects: usize, rng: &mut ChaCha8Rng)
        -> Drawn<Self::Scene>;

    /// A one-object scene of zero-shot class `class`, everything else uniform over the world.
    fn single(&self, class: usize, rng: &mut ChaCha8Rng) -> Self::Scene;

    /// The scene's zero-shot class: `Some` exactly for one-object scenes.
    fn class(&self, scene: &Self::Scene) -> Option<usize>;

    /// A clean caption. Must draw the same number of values from `rng` for any two scenes that
    /// differ in one attribute, so a partly-wrong caption reuses the clean one's wording.
    fn caption(&self, scene: &Self::Scene, rng: &mut ChaCha8Rng) -> String;

    /// The scene as a partly-wrong caption describes it: one attribute or object replaced.
    fn partly_wrong(&self, scene: &Self::Scene, rng: &mut ChaCha8Rng) -> (Self::Scene, Wrong);

    /// The image; `rng` supplies jitter and texture, so equal seeds give equal pixels.
    fn render(&self, scene: &Self::Scene, rng: &mut ChaCha8Rng) -> RgbImage;
}
