//! The contrastive losses against golden values from numpy (`tools/reference/siglip_golden.py`,
//! float64, stable `np.logaddexp`), against finite differences, and the streamed blocks against the
//! whole matrix.
use jester::loss::{
    sigmoid_batch_loss, sigmoid_nll_cols, sigmoid_nll_matrix, sigmoid_nll_rows,
    sigmoid_per_example, softmax_batch_loss, softmax_per_example,
};
use serde::Deserialize;
use tch::{Kind, Tensor};

#[derive(Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    n: i64,
    d: i64,
    img: Vec<Vec<f64>>,
    txt: Vec<Vec<f64>>,
    t: f64,
    b: f64,
    sigmoid_nll: Vec<Vec<f64>>,
    sigmoid_loss: f64,
    sigmoid_per_example: Vec<f64>,
    softmax_loss: f64,
    softmax_per_example: Vec<f64>,
}

fn golden() -> Golden {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/loss_golden.json"
    ))
    .expect("golden file");
    serde_json::from_str(&text).expect("golden json")
}

fn matrix(rows: &[Vec<f64>], kind: Kind) -> Tensor {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat)
        .reshape([rows.len() as i64, -1])
        .to_kind(kind)
}

fn all_true(x: &Tensor) -> bool {
    x.int64_value(&[]) != 0
}

fn scalar(x: f64, kind: Kind) -> Tensor {
    Tensor::scalar_tensor(x, (kind, tch::Device::Cpu))
}

/// |got − want| ≤ atol + rtol·|want| elementwise, and everything finite.
fn assert_close(what: &str, got: &Tensor, want: &Tensor, atol: f64, rtol: f64) {
    let got = got.to_kind(Kind::Double);
    assert!(
        all_true(&got.isfinite().all()),
        "{what}: non-finite values {got}"
    );
    let err = (&got - want).abs() - want.abs() * rtol;
    let worst = err.max().double_value(&[]);
    assert!(
        worst <= atol,
        "{what}: off by {worst} beyond rtol {rtol} (atol {atol})\n got {got}\nwant {want}"
    );
}

#[test]
fn losses_match_numpy_golden_values_in_f64_and_f32() {
    for case in golden().cases {
        for kind in [Kind::Double, Kind::Float] {
            let (img, txt) = (matrix(&case.img, kind), matrix(&case.txt, kind));
            assert_eq!(img.size(), [case.n, case.d]);
            let (t, b) = (scalar(case.t, kind), scalar(case.b, kind));
            // f32 rounds logits of size |t| + |b| at ~6e-8 relative; sums of n of them add up.
            let (atol, rtol) = match kind {
                Kind::Double => (1e-9 * (1.0 + case.t + case.b.abs()), 1e-9),
                _ => (1e-6 * (1.0 + case.t + case.b.abs()) * case.n as f64, 1e-5),
            };
            let what = |q: &str| format!("{} {q} {kind:?}", case.name);
            let want_nll = matrix(&case.sigmoid_nll, Kind::Double);
            assert_close(
                &what("nll"),
                &sigmoid_nll_matrix(&img, &txt, &t, &b),
                &want_nll,
                atol,
                rtol,
            );
            let want = Tensor::from_slice(&case.sigmoid_per_example);
            assert_close(
                &what("per-example"),
                &sigmoid_per_example(&img, &txt, &t, &b),
                &want,
                atol,
                rtol,
            );
            let want = scalar(case.sigmoid_loss, Kind::Double);
            assert_close(
                &what("loss"),
                &sigmoid_batch_loss(&img, &txt, &t, &b),
                &want,
                atol,
                rtol,
            );
            let want = Tensor::from_slice(&case.softmax_per_example);
            assert_close(
                &what("softmax per-example"),
                &softmax_per_example(&img, &txt, &t),
                &want,
                atol,
                rtol,
            );
            let want = scalar(case.softmax_loss, Kind::Double);
            assert_close(
                &what("softmax loss"),
                &softmax_batch_loss(&img, &txt, &t),
                &want,
                atol,
                rtol,
            );
        }
    }
}

fn random_batch(n: i64, d: i64, seed: i64) -> (Tensor, Tensor) {
    let g = |s: i64| {
        // A small LCG: deterministic inputs without touching libtorch's global generator.
        let v: Vec<f64> = (0..n * d)
            .map(|i| (((i + 1) * 7919 + s * 104_729) % 1000) as f64 / 500.0 - 1.0)
            .collect();
        Tensor::from_slice(&v).reshape([n, d])
    };
    let (img, txt) = (g(seed), g(seed + 1) * 0.5 + g(seed) * 0.5);
    let norm = |x: Tensor| &x / x.norm_scalaropt_dim(2.0, [1i64].as_slice(), true);
    (norm(img), norm(txt))
}

/// Central differences of `f` at `x` along every coordinate, compared with autograd.
fn check_gradient(name: &str, x: &Tensor, f: &dyn Fn(&Tensor) -> Tensor) {
    let x = x.detach().set_requires_grad(true);
    let grad = tch::Tensor::run_backward(&[f(&x)], &[&x], false, false).remove(0);
    let flat = x.detach().flatten(0, -1);
    let eps = 1e-6;
    for i in 0..flat.size()[0] {
        let bump = |delta: f64| {
            let y = flat.copy();
            let _ = y.get(i).fill_(flat.double_value(&[i]) + delta);
            f(&y.reshape(x.size())).double_value(&[])
        };
        let numeric = (bump(eps) - bump(-eps)) / (2.0 * eps);
        let analytic = grad.flatten(0, -1).double_value(&[i]);
        assert!(
            (numeric - analytic).abs() <= 1e-6 + 1e-5 * numeric.abs(),
            "{name}[{i}]: autograd {analytic} vs finite differences {numeric}"
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    let (img, txt) = random_batch(5, 4, 3);
    let log_t = scalar(10f64.ln(), Kind::Double);
    let b = scalar(-3.0, Kind::Double);
    let sig =
        |i: &Tensor, x: &Tensor, lt: &Tensor, b: &Tensor| sigmoid_batch_loss(i, x, &lt.exp(), b);
    check_gradient("sigmoid d/dimage", &img, &|x| sig(x, &txt, &log_t, &b));
    check_gradient("sigmoid d/dtext", &txt, &|x| sig(&img, x, &log_t, &b));
    check_gradient("sigmoid d/dt'", &log_t, &|x| sig(&img, &txt, x, &b));
    check_gradient("sigmoid d/db", &b, &|x| sig(&img, &txt, &log_t, x));
    check_gradient("softmax d/dimage", &img, &|x| {
        softmax_batch_loss(x, &txt, &log_t.exp())
    });
    check_gradient("softmax d/dtext", &txt, &|x| {
        softmax_batch_loss(&img, x, &log_t.exp())
    });
    check_gradient("softmax d/dt'", &log_t, &|x| {
        softmax_batch_loss(&img, &txt, &x.exp())
    });
}

#[test]
fn gradients_stay_finite_at_huge_logits() {
    let (img, txt) = random_batch(6, 3, 11);
    let img = img.set_requires_grad(true);
    for (t, b) in [(1e4, 0.0), (1.0, -1e4), (1.0, 1e4), (1e4, -1e4)] {
        for kind in [Kind::Float, Kind::Double] {
            let x = img.to_kind(kind).detach().set_requires_grad(true);
            let (tt, bb) = (scalar(t, kind), scalar(b, kind));
            let loss = sigmoid_batch_loss(&x, &txt.to_kind(kind), &tt, &bb)
                + softmax_batch_loss(&x, &txt.to_kind(kind), &tt);
            let grad = Tensor::run_backward(&[&loss], &[&x], false, false).remove(0);
            assert!(
                all_true(&loss.isfinite().all()),
                "loss at t={t} b={b}: {loss}"
            );
            assert!(
                all_true(&grad.isfinite().all()),
                "gradient at t={t} b={b}: {grad}"
            );
        }
    }
}

#[test]
fn streamed_blocks_are_rows_and_columns_of_the_matrix() {
    // Uneven sizes: 11 examples, blocks of 1, 4 and 6 rows in any order.
    let (img, txt) = random_batch(11, 5, 5);
    let (t, b) = (scalar(7.0, Kind::Double), scalar(-4.0, Kind::Double));
    let full = sigmoid_nll_matrix(&img, &txt, &t, &b);
    for rows in [vec![3i64], vec![10, 0, 5, 2], vec![1, 4, 6, 7, 8, 9]] {
        let index = Tensor::from_slice(&rows);
        let want_rows = full.index_select(0, &index);
        let want_cols = full.index_select(1, &index).tr();
        assert_close(
            "rows",
            &sigmoid_nll_rows(&img, &txt, &t, &b, &index),
            &want_rows,
            1e-12,
            1e-12,
        );
        assert_close(
            "cols",
            &sigmoid_nll_cols(&img, &txt, &t, &b, &index),
            &want_cols,
            1e-12,
            1e-12,
        );
    }
}
