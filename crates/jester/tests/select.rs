//! The selection engine against its naive twins (paper Alg. 1 on materialised matrices), brute-force
//! sub-batch scores, exact Plackett–Luce probabilities, and its GPU twin. Properties every selection
//! must have, and refused requests, are in `select_properties.rs`.
mod common;

use common::{clustered, config, small};
use jester::loss::{sigmoid_batch_loss, softmax_batch_loss, LossKind};
use jester::select::naive::{NaiveSigmoid, NaiveSoftmax};
use jester::select::{
    batch_score, select, select_naive, uniform_batch_score, ConditionalScores, ScoreKind, Scorer,
    SelectConfig, SigmoidConditional, SoftmaxConditional,
};
use jester::PairEmbeddings;
use tch::{Kind, Tensor};

const SCORES: [ScoreKind; 3] = [
    ScoreKind::Learnability,
    ScoreKind::HardLearner,
    ScoreKind::EasyReference,
];

fn values(x: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&x.to_kind(Kind::Double)).unwrap()
}

#[test]
fn streamed_joint_selection_picks_what_the_naive_twin_picks() {
    // f64 so that float summation order cannot break a near-tie; uneven chunk sizes on purpose.
    for (n, batch, chunks) in [(37, 13, 4), (64, 16, 16), (50, 20, 3)] {
        let (learner, reference) = clustered(&small(n, 12, 5, n as u64), Kind::Double);
        for loss in [LossKind::Sigmoid, LossKind::Softmax] {
            for score in SCORES {
                for gain in [2.0, 100.0] {
                    let c = config(score, loss, chunks, gain, 7);
                    let fast = select(&learner, Some(&reference), batch, &c).unwrap();
                    let slow = select_naive(&learner, Some(&reference), batch, &c).unwrap();
                    assert_eq!(
                        fast, slow,
                        "B={n} b={batch} N={chunks} {loss:?} {score:?} gain {gain}"
                    );
                }
            }
        }
    }
}

/// Steps a streamed sampler and its twin through the same chunks, comparing the conditional
/// logits before each: norm-wise relative error ≤ `tolerance`, −∞ at the same places.
fn assert_same_logits(
    fast: &mut dyn ConditionalScores,
    slow: &mut dyn ConditionalScores,
    chunks: &[Vec<i64>],
    tolerance: f64,
    what: &str,
) {
    for (step, chunk) in chunks.iter().enumerate() {
        let (a, b) = (
            values(&fast.logits().unwrap()),
            values(&slow.logits().unwrap()),
        );
        let scale = b
            .iter()
            .filter(|x| x.is_finite())
            .fold(0f64, |m, x| m.max(x.abs()))
            .max(1e-12);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            if y.is_finite() {
                assert!(
                    (x - y).abs() <= tolerance * scale,
                    "{what} step {step} [{i}]: {x} vs {y} (scale {scale})"
                );
            } else {
                assert_eq!(x, y, "{what} step {step} [{i}]");
            }
        }
        let chunk = Tensor::from_slice(chunk);
        fast.add(&chunk).unwrap();
        slow.add(&chunk).unwrap();
    }
}

fn some_chunks(n: i64, sizes: &[usize]) -> Vec<Vec<i64>> {
    // A fixed scrambled order of 0..n cut into chunks.
    let order: Vec<i64> = (0..n).map(|i| (i * 17 + 5) % n).collect();
    let mut out = Vec::new();
    let mut at = 0;
    for &k in sizes {
        out.push(order[at..at + k].to_vec());
        at += k;
    }
    out
}

#[test]
fn streamed_f32_conditional_logits_are_within_1e4_of_the_f64_twin() {
    let (n, sizes) = (203, [12, 12, 12, 12, 12, 12, 12, 17]);
    let (l32, r32) = clustered(&small(n, 32, 9, 1), Kind::Float);
    let (l64, r64) = clustered(&small(n, 32, 9, 1), Kind::Double);
    let chunks = some_chunks(n as i64, &sizes);
    for score in SCORES {
        let fast = Scorer::new(score, &l32, Some(&r32)).unwrap();
        let slow = Scorer::new(score, &l64, Some(&r64)).unwrap();
        let what = format!("sigmoid {score:?}");
        assert_same_logits(
            &mut SigmoidConditional::new(&fast),
            &mut NaiveSigmoid::new(&slow),
            &chunks,
            1e-4,
            &what,
        );
        // Softmax: the streamed f32 path against the brute-force f64 twin, on fewer chunks.
        let what = format!("softmax {score:?}");
        assert_same_logits(
            &mut SoftmaxConditional::new(&fast, 12),
            &mut NaiveSoftmax::new(&slow),
            &chunks[..3],
            1e-4,
            &what,
        );
    }
}

#[test]
fn sigmoid_conditional_logits_are_differences_of_the_sub_batch_score() {
    let (learner, reference) = clustered(&small(30, 8, 4, 2), Kind::Double);
    let selected: Vec<i64> = vec![3, 17, 4, 29, 11, 0, 8];
    // The sub-batch score of a set K: |K| · (L_learner(K) − L_reference(K)) with the batch loss.
    let score = |set: &[i64]| {
        let index = Tensor::from_slice(set);
        let loss = |m: &PairEmbeddings| {
            let sub = m.select_rows(&index);
            let s = |x: f64| Tensor::scalar_tensor(x, (Kind::Double, tch::Device::Cpu));
            sigmoid_batch_loss(sub.image(), sub.text(), &s(m.temperature()), &s(m.bias()))
                .double_value(&[])
        };
        set.len() as f64 * (loss(&learner) - loss(&reference))
    };
    let scorer = Scorer::new(ScoreKind::Learnability, &learner, Some(&reference)).unwrap();
    let mut conditional = SigmoidConditional::new(&scorer);
    conditional
        .add(&Tensor::from_slice(&selected[..4]))
        .unwrap();
    conditional
        .add(&Tensor::from_slice(&selected[4..]))
        .unwrap();
    let logits = values(&conditional.logits().unwrap());
    let base = score(&selected);
    for i in 0..30i64 {
        if selected.contains(&i) {
            assert_eq!(logits[i as usize], f64::NEG_INFINITY);
            continue;
        }
        let mut with_i = selected.clone();
        with_i.push(i);
        let want = score(&with_i) - base;
        assert!(
            (logits[i as usize] - want).abs() < 1e-9 * (1.0 + want.abs()),
            "[{i}] {} vs {want}",
            logits[i as usize]
        );
    }
    // And the softmax twin really is the brute-force difference of the softmax batch score.
    let mut naive = NaiveSoftmax::new(&scorer);
    naive.add(&Tensor::from_slice(&selected)).unwrap();
    let logits = values(&naive.logits().unwrap());
    let softmax_score = |set: &[i64]| {
        let index = Tensor::from_slice(set);
        let loss = |m: &PairEmbeddings| {
            let sub = m.select_rows(&index);
            let t = Tensor::scalar_tensor(m.temperature(), (Kind::Double, tch::Device::Cpu));
            softmax_batch_loss(sub.image(), sub.text(), &t).double_value(&[])
        };
        set.len() as f64 * (loss(&learner) - loss(&reference))
    };
    let base = softmax_score(&selected);
    let mut with_i = selected.clone();
    with_i.push(5);
    let want = softmax_score(&with_i) - base;
    assert!(
        (logits[5] - want).abs() < 1e-9 * (1.0 + want.abs()),
        "{} vs {want}",
        logits[5]
    );
}

#[test]
fn first_chunk_frequencies_match_exact_plackett_luce_probabilities() {
    // B = 4, a first chunk of 2: 12 ordered outcomes with exact probabilities
    // P(i then j) = p_i · p_j / (1 − p_i), p = softmax(gain · S_ii).
    let (learner, reference) = clustered(&small(4, 6, 4, 9), Kind::Double);
    let scorer = Scorer::new(ScoreKind::Learnability, &learner, Some(&reference)).unwrap();
    let diag = values(&scorer.diagonal());
    let spread = diag.iter().cloned().fold(f64::MIN, f64::max)
        - diag.iter().cloned().fold(f64::MAX, f64::min);
    let gain = 1.5 / spread; // gain·S spans 1.5 nats: every outcome is likely enough to count.
    let z: f64 = diag.iter().map(|s| (gain * s).exp()).sum();
    let p: Vec<f64> = diag.iter().map(|s| (gain * s).exp() / z).collect();

    let trials = 20_000;
    let mut counts = [[0usize; 4]; 4];
    for seed in 0..trials {
        // Joint, b = 4 in 2 chunks: the first chunk is the one drawn from the diagonal.
        let c = SelectConfig {
            gain,
            seed,
            ..config(ScoreKind::Learnability, LossKind::Sigmoid, 2, gain, seed)
        };
        let s = select(&learner, Some(&reference), 4, &c).unwrap();
        counts[s.indices[0] as usize][s.indices[1] as usize] += 1;
    }
    let mut chi2 = 0.0;
    for i in 0..4 {
        for j in 0..4 {
            if i != j {
                let expected = trials as f64 * p[i] * p[j] / (1.0 - p[i]);
                chi2 += (counts[i][j] as f64 - expected).powi(2) / expected;
            } else {
                assert_eq!(counts[i][j], 0, "an example was picked twice");
            }
        }
    }
    // 11 degrees of freedom: P(χ² > 31.26) = 0.001. Seeds are fixed, so this cannot flake.
    assert!(
        chi2 < 31.26,
        "χ² = {chi2} over 12 ordered outcomes: counts {counts:?}, p {p:?}"
    );
}

#[test]
fn cuda_selection_matches_cpu_selection() {
    if !tch::Cuda::is_available() {
        eprintln!("skipped: no CUDA device (the GPU twin runs only where libtorch sees a GPU)");
        return;
    }
    let (learner, reference) = clustered(&small(300, 16, 8, 4), Kind::Double);
    let gpu = tch::Device::Cuda(0);
    let (lg, rg) = (
        learner.to(gpu, Kind::Double),
        reference.to(gpu, Kind::Double),
    );
    for loss in [LossKind::Sigmoid, LossKind::Softmax] {
        let c = SelectConfig {
            loss,
            ..SelectConfig::default()
        };
        assert_eq!(
            select(&learner, Some(&reference), 60, &c).unwrap(),
            select(&lg, Some(&rg), 60, &c).unwrap()
        );
    }
}

#[test]
fn uniform_batch_score_is_the_mean_over_every_subset() {
    // B = 6, b = 3: the exact expectation is the average over all 20 subsets.
    let (learner, reference) = clustered(&small(6, 5, 2, 4), Kind::Double);
    let mut sum = 0.0;
    let mut count = 0;
    for mask in 0u32..64 {
        if mask.count_ones() == 3 {
            let set: Vec<i64> = (0..6).filter(|i| mask >> i & 1 == 1).collect();
            let index = Tensor::from_slice(&set);
            sum += batch_score(
                ScoreKind::Learnability,
                LossKind::Sigmoid,
                &learner,
                Some(&reference),
                &index,
                2,
            )
            .unwrap();
            count += 1;
        }
    }
    let exact = uniform_batch_score(
        ScoreKind::Learnability,
        LossKind::Sigmoid,
        &learner,
        Some(&reference),
        3,
        2,
    )
    .unwrap();
    assert!(
        (exact - sum / count as f64).abs() < 1e-9 * (1.0 + exact.abs()),
        "{exact} vs {}",
        sum / count as f64
    );
}

#[test]
fn a_score_that_weighs_only_the_reference_selects_the_same_without_the_learner() {
    // The step skips the learner forward for easy-reference and passes the reference in the
    // learner's place: the scorer reads only weighted models, so the selection is the same.
    let (learner, reference) = clustered(&small(48, 12, 4, 3), Kind::Float);
    for loss in [LossKind::Sigmoid, LossKind::Softmax] {
        let c = config(ScoreKind::EasyReference, loss, 4, 100.0, 11);
        let with = select(&learner, Some(&reference), 16, &c).unwrap();
        let without = select(&reference, Some(&reference), 16, &c).unwrap();
        assert_eq!(with, without, "{loss:?}");
    }
}
