//! Properties every selection must have (b distinct in-range indices, chunks tiling it, the same
//! draw from the same seed, for any method, score, loss and gain), gain 0 as uniform sampling
//! without replacement, joint selection beating independent and uniform, and refused requests.
mod common;

use common::{clustered, config, small};
use jester::loss::LossKind;
use jester::select::{batch_score, select, Method, ScoreKind, SelectConfig};
use jester::PairEmbeddings;
use proptest::prelude::*;
use tch::{Kind, Tensor};

#[test]
fn joint_selection_finds_more_learnability_than_independent_or_uniform() {
    let (n, batch) = (1024, 204); // f = 0.8
    let mut totals = [0.0; 3];
    for seed in 0..3 {
        let (learner, reference) = clustered(&small(n, 32, 32, 100 + seed), Kind::Float);
        for (slot, method) in [Method::Joint, Method::Independent, Method::Uniform]
            .into_iter()
            .enumerate()
        {
            let c = SelectConfig {
                method,
                seed,
                ..SelectConfig::default()
            };
            let s = select(&learner, Some(&reference), batch, &c).unwrap();
            let index = s.index_tensor(learner.device());
            totals[slot] += batch_score(
                ScoreKind::Learnability,
                LossKind::Sigmoid,
                &learner,
                Some(&reference),
                &index,
                64,
            )
            .unwrap();
        }
    }
    let [joint, independent, uniform] = totals.map(|t| t / 3.0);
    eprintln!(
        "mean learnability: joint {joint:.3}, independent {independent:.3}, uniform {uniform:.3}"
    );
    assert!(
        joint > independent && joint > uniform,
        "joint {joint}, independent {independent}, uniform {uniform}"
    );
}

#[test]
fn bad_requests_are_refused_with_the_numbers() {
    let (learner, reference) = clustered(&small(10, 4, 2, 0), Kind::Float);
    let err = select(&learner, Some(&reference), 11, &SelectConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("11") && err.contains("10"), "{err}");
    let err = select(
        &learner,
        None,
        5,
        &SelectConfig {
            chunks: 1,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("reference"), "{err}");
    let (other, _) = clustered(&small(12, 4, 2, 0), Kind::Float);
    let err = select(
        &learner,
        Some(&other),
        5,
        &SelectConfig {
            chunks: 1,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("10") && err.contains("12"), "{err}");
    // Hard-learner needs no reference.
    let c = SelectConfig {
        score: ScoreKind::HardLearner,
        chunks: 2,
        ..Default::default()
    };
    assert_eq!(select(&learner, None, 5, &c).unwrap().indices.len(), 5);
}

fn any_method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Joint),
        Just(Method::Independent),
        Just(Method::Uniform)
    ]
}
fn any_score() -> impl Strategy<Value = ScoreKind> {
    prop_oneof![
        Just(ScoreKind::Learnability),
        Just(ScoreKind::HardLearner),
        Just(ScoreKind::EasyReference),
        Just(ScoreKind::Uniform)
    ]
}

/// Gains from 0 (uniform without replacement) through denormal-small to the paper's 100.
fn any_gain() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(f64::MIN_POSITIVE),
        Just(1e-300),
        1e-12f64..1e-3,
        0.1f64..10.0,
        Just(100.0),
        Just(1e6),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_selection_is_b_distinct_indices_in_range_and_reproducible(
        n in 2usize..60, dim in 1usize..8, keep in 0.0f64..1.0, chunks in 1usize..20,
        seed in any::<u64>(), method in any_method(), score in any_score(), softmax in any::<bool>(),
        gain in any_gain(),
    ) {
        let batch = ((n as f64 * keep) as usize).clamp(1, n);
        let chunks = chunks.min(batch);
        let (learner, reference) = clustered(&small(n, dim, 3, seed % 1000), Kind::Float);
        let loss = if softmax { LossKind::Softmax } else { LossKind::Sigmoid };
        let c = SelectConfig { method, score, loss, chunks, gain, seed };
        let s = select(&learner, Some(&reference), batch, &c).unwrap();
        prop_assert_eq!(s.indices.len(), batch);
        let mut sorted = s.indices.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), batch, "an index was picked twice: {:?}", s.indices);
        prop_assert!(s.indices.iter().all(|&i| (0..n as i64).contains(&i)));
        // The chunks tile the selection in order.
        prop_assert_eq!(s.chunks.first().map(|r| r.start), Some(0));
        prop_assert_eq!(s.chunks.last().map(|r| r.end), Some(batch));
        prop_assert!(s.chunks.windows(2).all(|w| w[0].end == w[1].start && w[0].start < w[0].end));
        prop_assert_eq!(&s, &select(&learner, Some(&reference), batch, &c).unwrap());
    }
}

#[test]
fn gain_zero_is_uniform_without_replacement() {
    // 32 of 64 in 16 chunks with gain 0: every draw must be distinct (−∞·0 = NaN once re-drew the
    // first chunk in every later one), and each example is kept with probability b/B = 1/2
    // whatever its score. Over 400 seeds the count of each example is Binomial(400, 1/2):
    // sd 10, so ±60 is 6 sd.
    let (learner, reference) = clustered(&small(64, 6, 3, 11), Kind::Float);
    let mut counts = [0u32; 64];
    let seeds = 400;
    for seed in 0..seeds {
        let c = config(ScoreKind::Learnability, LossKind::Sigmoid, 16, 0.0, seed);
        let s = select(&learner, Some(&reference), 32, &c).unwrap();
        let mut sorted = s.indices.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 32, "seed {seed}: repeats in {:?}", s.indices);
        for i in s.indices {
            counts[i as usize] += 1;
        }
    }
    for (i, &k) in counts.iter().enumerate() {
        assert!(
            (k as i64 - 200).abs() <= 60,
            "example {i} kept {k} of {seeds} times"
        );
    }
}

#[test]
fn a_grouped_selection_gives_each_group_its_quota_chunk_by_chunk() {
    let (learner, reference) = clustered(&small(400, 16, 8, 5), Kind::Float);
    let c = SelectConfig {
        chunks: 4,
        seed: 3,
        ..SelectConfig::default()
    };
    // One group is the plain selection.
    let one = jester::select::select_grouped(&learner, Some(&reference), 80, &c, 1).unwrap();
    assert_eq!(one, select(&learner, Some(&reference), 80, &c).unwrap());
    for groups in [2, 4] {
        let s = jester::select::select_grouped(&learner, Some(&reference), 80, &c, groups).unwrap();
        let per_group = 400 / groups as i64;
        assert_eq!(s.indices.len(), 80);
        let mut distinct = s.indices.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 80, "no example twice");
        for chunk in &s.chunks {
            let rows = &s.indices[chunk.clone()];
            assert_eq!(rows.len(), 80 / 4);
            for g in 0..groups as i64 {
                let mine = rows.iter().filter(|&&i| i / per_group == g).count();
                assert_eq!(mine, 80 / 4 / groups, "groups {groups}: chunk {chunk:?}");
            }
        }
    }
    assert!(jester::select::select_grouped(&learner, Some(&reference), 80, &c, 3).is_err());
}

#[test]
fn a_groups_picks_depend_on_the_other_groups_candidates() {
    // Joint selection conditions every chunk on everything chosen before in every group: with
    // group 0's candidates and the seed unchanged, other candidates in group 1 change what group
    // 0 picks after the first chunk (drawn from each example's own score, so it stays). A
    // selection made group by group, independently, would give group 0 the same picks.
    let (learner, reference) = clustered(&small(400, 16, 8, 5), Kind::Float);
    let (other_l, other_r) = clustered(&small(400, 16, 8, 6), Kind::Float);
    let swap_second_half = |a: &PairEmbeddings, b: &PairEmbeddings| {
        let half =
            |x: &Tensor, y: &Tensor| Tensor::cat(&[x.narrow(0, 0, 200), y.narrow(0, 200, 200)], 0);
        PairEmbeddings::new(
            half(a.image(), b.image()),
            half(a.text(), b.text()),
            a.temperature(),
            a.bias(),
        )
        .unwrap()
    };
    let learner2 = swap_second_half(&learner, &other_l);
    let reference2 = swap_second_half(&reference, &other_r);
    let c = SelectConfig {
        chunks: 4,
        seed: 3,
        ..SelectConfig::default()
    };
    let group0 = |s: &jester::select::Selection, chunk: usize| -> Vec<i64> {
        let mut rows: Vec<i64> = s.indices[s.chunks[chunk].clone()]
            .iter()
            .copied()
            .filter(|&i| i < 200)
            .collect();
        rows.sort_unstable();
        rows
    };
    let a = jester::select::select_grouped(&learner, Some(&reference), 80, &c, 2).unwrap();
    let b = jester::select::select_grouped(&learner2, Some(&reference2), 80, &c, 2).unwrap();
    assert_eq!(
        group0(&a, 0),
        group0(&b, 0),
        "the first chunk reads own scores only"
    );
    let later = |s| (1..4).flat_map(|k| group0(s, k)).collect::<Vec<_>>();
    assert_ne!(
        later(&a),
        later(&b),
        "group 0's later picks must follow group 1's candidates"
    );
}
