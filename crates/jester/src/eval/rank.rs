//! Ranks of the right answer among scored candidates, and the accuracies and recalls built on them.
//!
//! Ties are **pessimistic**: the rank of the right answer is the number of wrong candidates scoring
//! at least as high (`>=`), so a tie counts against the sample. A model that cannot tell candidates
//! apart — a collapsed tower whose embeddings are all equal — then scores 0 at R@1 rather than 100 %
//! (the optimistic `>` rule) or ~1/n (the expected rank); pessimism keeps the metric an integer
//! count and a lower bound, and distinct float scores of a working model almost never tie exactly,
//! so it costs such a model nothing. NaN scores are pessimistic too: a NaN never ranks below anything.
//!
//! Identical captions make identical text embeddings, hence exact ties, so retrieval treats
//! examples whose captions are equal as matches of one another (see [`caption_groups`]); in the
//! same way, classes whose prompts tokenise identically ("Frog" and "frog" to a lowercasing
//! tokenizer) answer for one another in zero-shot classification ([`prompt_groups`]).
use std::collections::HashMap;

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Recall at 1, 5 and 10 (fractions).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recall {
    pub r1: f64,
    pub r5: f64,
    pub r10: f64,
}

/// Query rows ranked per block: the similarities held at once are `[BLOCK, n]`, not `[n, n]`.
const BLOCK: i64 = 512;

/// Top-1 and top-5 zero-shot accuracy (fractions) of `image [n, D]` against class embeddings
/// `classes [C, D]`, for the true labels `labels [n]`. `class_groups [C]` gives each class's prompt
/// identity ([`prompt_groups`]): a class of the true class's group is a right answer too, any
/// other class tying with the true one counts against it (module docs). Top-5 is top-C when there
/// are fewer than 5 classes.
pub fn zero_shot_accuracy(
    image: &Tensor,
    classes: &Tensor,
    labels: &[i64],
    class_groups: &[i64],
) -> (f64, f64) {
    let n = labels.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let device = image.device();
    let logits = image.matmul(&classes.tr());
    let truth = Tensor::from_slice(labels).to_device(device).unsqueeze(1);
    let own = logits.gather(1, &truth, false);
    let groups = Tensor::from_slice(class_groups).to_device(device);
    let wrong = groups
        .unsqueeze(0)
        .ne_tensor(&groups.index_select(0, &truth.squeeze_dim(1)).unsqueeze(1));
    // `!(x < own)` is `x >= own` that also holds for NaN; only classes outside the truth's group
    // count.
    let rank = logits
        .lt_tensor(&own)
        .logical_not()
        .logical_and(&wrong)
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Int64);
    (hits(&rank, 1), hits(&rank, 5.min(classes.size()[0])))
}

/// Each class's prompt identity `[C]` from its P prompts' token ids (`ids [C·P, T]`, class-major,
/// with `last [C·P]`, the last position of each): classes whose prompts are all identical share
/// the index of the first of them, as [`caption_groups`] does for captions.
pub fn prompt_groups(ids: &Tensor, last: &Tensor, templates: usize) -> Result<Vec<i64>> {
    let per_prompt = caption_groups(ids, last)?;
    let mut first: HashMap<&[i64], i64> = HashMap::new();
    Ok(per_prompt
        .chunks(templates.max(1))
        .enumerate()
        .map(|(class, prompts)| *first.entry(prompts).or_insert(class as i64))
        .collect())
}

/// How many classes share their prompts with another class (0 when every class reads apart).
pub fn tied_classes(class_groups: &[i64]) -> usize {
    duplicate_captions(class_groups)
}

/// Retrieval recalls of pairs `(image[i], text[i])`, image→text then text→image, from
/// `image [n, D]`, `text [n, D]` and `captions [n]`, a caption identity per pair (as
/// [`caption_groups`] makes): every text with image i's caption is a right answer for image i,
/// and every image whose caption is text j's is a right answer for text j. Ties are pessimistic
/// (module docs). Memory is O(n·D + n·512): the similarities are ranked in blocks of rows.
pub fn retrieval(image: &Tensor, text: &Tensor, captions: &[i64]) -> Result<(Recall, Recall)> {
    const OP: &str = "retrieval";
    let n = captions.len() as i64;
    for (name, x) in [("image", image), ("text", text)] {
        if x.dim() != 2 || x.size()[0] != n || x.size() != image.size() {
            return Err(Error::Shape {
                op: OP,
                expected: format!(
                    "{name} as [n, D] with n = {n} captions and D as the image's {:?}",
                    image.size()
                ),
                got: x.size(),
            });
        }
    }
    let groups = Tensor::from_slice(captions).to_device(image.device());
    Ok((recall(image, text, &groups), recall(text, image, &groups)))
}

/// R@1, 5, 10 of `queries [n, D]` against `candidates [n, D]`, where candidate j answers query i
/// when `groups[i] == groups[j]` (`groups [n]`, on their device).
fn recall(queries: &Tensor, candidates: &Tensor, groups: &Tensor) -> Recall {
    let n = queries.size()[0];
    if n == 0 {
        return Recall::default();
    }
    let columns = groups.unsqueeze(0);
    let mut ranks = Vec::new();
    for start in (0..n).step_by(BLOCK as usize) {
        let rows = BLOCK.min(n - start);
        let similarity = queries.narrow(0, start, rows).matmul(&candidates.tr());
        let right = groups
            .narrow(0, start, rows)
            .unsqueeze(1)
            .eq_tensor(&columns);
        let wrong = right.logical_not();
        // The best-scoring right answer is the one a user would find first.
        let best = similarity
            .masked_fill(&wrong, f64::NEG_INFINITY)
            .amax([1i64].as_slice(), true);
        ranks.push(
            similarity
                .lt_tensor(&best)
                .logical_not()
                .logical_and(&wrong)
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Int64),
        );
    }
    let rank = Tensor::cat(&ranks, 0);
    Recall {
        r1: hits(&rank, 1),
        r5: hits(&rank, 5),
        r10: hits(&rank, 10),
    }
}

/// The fraction of `rank [n]` below `k`.
fn hits(rank: &Tensor, k: i64) -> f64 {
    rank.lt(k)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[])
}

/// A caption identity per example of `ids [n, T]` (with last real positions `last [n]`): the index
/// of the first example whose caption has the same token ids up to and including its last
/// position. Captions are compared as the text tower reads them, since eval holds no strings:
/// after the tokenizer's normalisation (jester's BPE lowercases and collapses whitespace) and
/// truncation to T. Captions that become the same ids embed identically, so the model cannot
/// tell them apart either.
pub fn caption_groups(ids: &Tensor, last: &Tensor) -> Result<Vec<i64>> {
    const OP: &str = "caption_groups";
    let size = ids.size();
    if size.len() != 2 || last.size() != [size[0]] {
        return Err(Error::Shape {
            op: OP,
            expected: format!("ids as [n, T] with last as [n] (last is {:?})", last.size()),
            got: size,
        });
    }
    let context = size[1] as usize;
    let flat = Vec::<i64>::try_from(
        &ids.reshape([-1])
            .to_kind(Kind::Int64)
            .to_device(tch::Device::Cpu),
    )?;
    let last = Vec::<i64>::try_from(&last.to_kind(Kind::Int64).to_device(tch::Device::Cpu))?;
    let mut first: HashMap<&[i64], i64> = HashMap::with_capacity(last.len());
    let mut groups = Vec::with_capacity(last.len());
    for (i, &end) in last.iter().enumerate() {
        if end < 0 || end as usize >= context {
            return Err(Error::invalid(
                OP,
                format!("example {i} ends at position {end}, outside its T = {context} ids"),
            ));
        }
        let caption = &flat[i * context..i * context + end as usize + 1];
        groups.push(*first.entry(caption).or_insert(i as i64));
    }
    Ok(groups)
}

/// How many examples share their caption with another (`groups` as [`caption_groups`] makes).
pub fn duplicate_captions(groups: &[i64]) -> usize {
    let mut sizes: HashMap<i64, usize> = HashMap::new();
    for &g in groups {
        *sizes.entry(g).or_default() += 1;
    }
    groups.iter().filter(|g| sizes[g] > 1).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(rows: &[[f32; 3]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let t = Tensor::from_slice(&flat).reshape([rows.len() as i64, 3]);
        let norm = t.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        t / norm
    }

    fn distinct(n: i64) -> Vec<i64> {
        (0..n).collect()
    }

    #[test]
    fn an_oracle_classifier_is_right_and_a_shuffled_one_is_wrong() {
        // Class c is axis c; image i points at class labels[i] with a little of another axis.
        let classes = unit(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let images = unit(&[
            [1.0, 0.2, 0.0],
            [0.1, 1.0, 0.0],
            [0.0, 0.3, 1.0],
            [0.9, 0.0, 0.2],
        ]);
        assert_eq!(
            zero_shot_accuracy(&images, &classes, &[0, 1, 2, 0], &[0, 1, 2]),
            (1.0, 1.0)
        );
        // Labels off by one: top-1 is zero; top-5 (≥ C) is always 1.
        assert_eq!(
            zero_shot_accuracy(&images, &classes, &[1, 2, 0, 1], &[0, 1, 2]),
            (0.0, 1.0)
        );
        // Image 0's second-best class is 1 (0.2): a top-2 hit, not a top-1 one.
        let (top1, _) = zero_shot_accuracy(&images, &classes, &[1, 1, 2, 0], &[0, 1, 2]);
        assert_eq!(top1, 0.75);
    }

    #[test]
    fn retrieval_of_an_oracle_is_perfect_and_of_a_rotation_is_known() {
        let image = unit(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let (i2t, t2i) = retrieval(&image, &image, &distinct(3)).unwrap();
        assert_eq!((i2t.r1, t2i.r1, i2t.r10), (1.0, 1.0, 1.0));
        // Texts rotated by one: each image's partner is the least similar of three (rank 2).
        let text = unit(&[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
        let shifted = unit(&[[0.0, 0.0, 1.0], [1.0, 0.1, 0.0], [0.0, 1.0, 0.1]]);
        let (i2t, _) = retrieval(&image, &text, &distinct(3)).unwrap();
        assert_eq!(i2t.r1, 0.0);
        assert_eq!(i2t.r5, 1.0);
        let (i2t, _) = retrieval(&image, &shifted, &distinct(3)).unwrap();
        assert_eq!(
            i2t.r1, 0.0,
            "image 0's own text is orthogonal to it, another is parallel"
        );
    }

    #[test]
    fn a_tie_with_the_right_answer_counts_against_it() {
        // Image 0 scores texts 0 and 1 equally: its partner shares rank 1 with a wrong one.
        let image = unit(&[[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let text = unit(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let (i2t, _) = retrieval(&image, &text, &distinct(3)).unwrap();
        assert!((i2t.r1 - 2.0 / 3.0).abs() < 1e-12, "{i2t:?}");
        // A NaN score never wins: every wrong candidate ranks above it.
        let nan = Tensor::full([3, 3], f64::NAN, (Kind::Float, tch::Device::Cpu));
        let (i2t, t2i) = retrieval(&nan, &text, &distinct(3)).unwrap();
        assert_eq!((i2t.r1, i2t.r5, t2i.r1), (0.0, 1.0, 0.0));
        let (top1, _) = zero_shot_accuracy(&nan, &text, &[0, 1, 2], &[0, 1, 2]);
        assert_eq!(top1, 0.0);
    }

    #[test]
    fn blocks_rank_as_one_matrix_would() {
        // n spans three blocks; texts are noisy copies of the images, so recalls are in (0, 1).
        tch::manual_seed(0);
        let n = 2 * BLOCK + 7;
        // f64, so that blocked and whole products round alike.
        let image = Tensor::randn([n, 16], (Kind::Double, tch::Device::Cpu));
        let text = &image + 0.9 * Tensor::randn([n, 16], (Kind::Double, tch::Device::Cpu));
        let (i2t, t2i) = retrieval(&image, &text, &distinct(n)).unwrap();
        let similarity = image.matmul(&text.tr());
        let whole = |s: &Tensor| {
            let own = s.diagonal(0, 0, 1).unsqueeze(1);
            let rank = s
                .ge_tensor(&own)
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Int64)
                - 1;
            (hits(&rank, 1), hits(&rank, 5), hits(&rank, 10))
        };
        assert_eq!((i2t.r1, i2t.r5, i2t.r10), whole(&similarity));
        assert_eq!((t2i.r1, t2i.r5, t2i.r10), whole(&similarity.tr()));
        assert!(
            i2t.r1 > 0.0 && i2t.r1 < 1.0,
            "{i2t:?} should be informative"
        );
    }

    #[test]
    fn captions_group_by_their_ids_up_to_the_last_position() {
        // Rows 0 and 2 are one caption; row 3 has row 0's ids but ends earlier; padding differs
        // after row 1's end, which is never read.
        let ids = Tensor::from_slice(&[5i64, 6, 1, 0, 7, 1, 9, 9, 5, 6, 1, 0, 5, 6, 1, 0])
            .reshape([4, 4]);
        let last = Tensor::from_slice(&[2i64, 1, 2, 1]);
        let groups = caption_groups(&ids, &last).unwrap();
        assert_eq!(groups, [0, 1, 0, 3]);
        assert_eq!(duplicate_captions(&groups), 2);
        assert_eq!(duplicate_captions(&[0, 0, 0, 3, 4, 3]), 5);
        assert_eq!(duplicate_captions(&distinct(4)), 0);
        let err = caption_groups(&ids, &Tensor::from_slice(&[2i64, 1, 4, 0])).unwrap_err();
        assert!(
            err.to_string().contains("example 2 ends at position 4"),
            "{err}"
        );
        let err = caption_groups(&ids, &Tensor::from_slice(&[2i64])).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{err}");
    }
}
