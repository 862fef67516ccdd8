//! Reading user embeddings: the good layout round-trips, every bad file is refused with an error
//! that names the file and the problem.
use std::path::{Path, PathBuf};

use jester::io::{read_npy_pair, read_safetensors};
use tch::{Kind, Tensor};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jester-io-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rows(n: i64, d: i64) -> Tensor {
    (Tensor::arange(n * d, (Kind::Float, tch::Device::Cpu)).reshape([n, d]) + 1.0).sin()
}

fn write(path: &Path, tensors: &[(&str, Tensor)]) {
    Tensor::write_safetensors(tensors, path).unwrap();
}

/// A safetensors file's tensors, by name.
type Tensors = Vec<(&'static str, Tensor)>;

fn error_of(path: &Path) -> String {
    let err = read_safetensors(path).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "error does not name the file: {err}"
    );
    err
}

#[test]
fn good_safetensors_round_trip_normalised() {
    let path = dir("good").join("m.safetensors");
    write(
        &path,
        &[
            ("image", rows(5, 3)),
            ("text", rows(5, 3) * 2.0),
            ("t", Tensor::from(10f32)),
            ("b", Tensor::from(-10f32)),
        ],
    );
    let e = read_safetensors(&path).unwrap();
    assert_eq!(
        (e.len(), e.dim(), e.temperature(), e.bias()),
        (5, 3, 10.0, -10.0)
    );
    let norms = e.text().norm_scalaropt_dim(2.0, [1i64].as_slice(), false);
    assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-6);
}

#[test]
fn half_double_and_bfloat_safetensors_read_as_their_f32_values() {
    let d = dir("kinds");
    let reference = {
        let path = d.join("f32.safetensors");
        write(
            &path,
            &[
                ("image", rows(5, 3)),
                ("text", rows(5, 3) * 2.0),
                ("t", Tensor::from(10f32)),
                ("b", Tensor::from(-10f32)),
            ],
        );
        read_safetensors(&path).unwrap()
    };
    for (kind, tolerance) in [
        (Kind::Double, 1e-6),
        (Kind::Half, 2e-3),
        (Kind::BFloat16, 2e-2),
    ] {
        let path = d.join(format!("{kind:?}.safetensors"));
        write(
            &path,
            &[
                ("image", rows(5, 3).to_kind(kind)),
                ("text", (rows(5, 3) * 2.0).to_kind(kind)),
                ("t", Tensor::from(10f32).to_kind(kind)),
                ("b", Tensor::from(-10f32).to_kind(kind)),
            ],
        );
        let e = read_safetensors(&path).unwrap();
        assert!(matches!(e.kind(), Kind::Float | Kind::Double), "{kind:?}");
        assert_eq!((e.temperature(), e.bias()), (10.0, -10.0), "{kind:?}");
        for (a, b) in [(e.image(), reference.image()), (e.text(), reference.text())] {
            let gap = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
                .abs()
                .max()
                .double_value(&[]);
            assert!(gap < tolerance, "{kind:?}: {gap}");
        }
    }
}

#[test]
fn bad_safetensors_are_refused_with_the_reason() {
    let d = dir("bad");
    let ok = || {
        vec![
            ("image", rows(4, 3)),
            ("text", rows(4, 3)),
            ("t", Tensor::from(10f32)),
            ("b", Tensor::from(-10f32)),
        ]
    };
    let case = |name: &str, edit: &dyn Fn(&mut Tensors)| {
        let mut t = ok();
        edit(&mut t);
        let path = d.join(format!("{name}.safetensors"));
        write(&path, &t);
        error_of(&path)
    };
    let err = case("missing", &|t| {
        let _ = t.remove(1);
    });
    assert!(
        err.contains("missing tensor `text`") && err.contains("image"),
        "{err}"
    );
    let err = case("integer", &|t| t[0].1 = rows(4, 3).to_kind(Kind::Int));
    assert!(
        err.contains("I32") && err.contains("floating-point"),
        "{err}"
    );
    let err = case("integer-t", &|t| t[2].1 = Tensor::from(10i64));
    assert!(
        err.contains("`t`") && err.contains("floating-point"),
        "{err}"
    );
    let err = case("mismatch", &|t| t[1].1 = rows(5, 3));
    assert!(err.contains("[4, 3]") && err.contains("[5, 3]"), "{err}");
    let err = case("nan", &|t| {
        let x = rows(4, 3);
        let _ = x.get(2).get(1).fill_(f64::NAN);
        t[1].1 = x;
    });
    assert!(err.contains("text row 2") && err.contains("NaN"), "{err}");
    let err = case("vector", &|t| {
        t[0].1 = Tensor::ones([4], (Kind::Float, tch::Device::Cpu))
    });
    assert!(err.contains("[B, D]"), "{err}");
    let err = case("logscale", &|t| t[2].1 = Tensor::from(-2.3f32));
    assert!(
        err.contains("t = -2.3") && err.contains("temperature"),
        "{err}"
    );
    let err = case("zero", &|t| t[0].1 = rows(4, 3) * 0.0);
    assert!(err.contains("zero norm"), "{err}");

    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"this is not a safetensors file at all").unwrap();
    assert!(error_of(&junk).contains("not a safetensors file"));
    let err = read_safetensors(&d.join("absent.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.safetensors"), "{err}");
}

#[test]
fn npy_pairs_are_read_and_checked() {
    let d = dir("npy");
    let (image, text) = (d.join("image.npy"), d.join("text.npy"));
    rows(6, 4).write_npy(&image).unwrap();
    rows(6, 4).write_npy(&text).unwrap();
    let e = read_npy_pair(&image, &text, 10.0, -10.0).unwrap();
    assert_eq!((e.len(), e.dim()), (6, 4));

    // f64 and f16 files are converted (users' caches are often half precision).
    for (name, kind) in [("wide", Kind::Double), ("half", Kind::Half)] {
        let other = d.join(format!("{name}.npy"));
        rows(6, 4).to_kind(kind).write_npy(&other).unwrap();
        let mixed = read_npy_pair(&image, &other, 10.0, -10.0).unwrap();
        let gap = (mixed.text().to_kind(Kind::Double) - e.text().to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[]);
        assert!(gap < 1e-3, "{name}: {gap}");
    }
    let ints = d.join("ints.npy");
    Tensor::ones([6, 4], (Kind::Int64, tch::Device::Cpu))
        .write_npy(&ints)
        .unwrap();
    let err = read_npy_pair(&image, &ints, 10.0, -10.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ints.npy") && err.contains("floating-point"),
        "{err}"
    );
    let short = d.join("short.npy");
    rows(5, 4).write_npy(&short).unwrap();
    let err = read_npy_pair(&image, &short, 10.0, -10.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[6, 4]") && err.contains("[5, 4]"), "{err}");
    let err = read_npy_pair(&image, &d.join("nope.npy"), 10.0, -10.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope.npy") && err.contains("no such file"),
        "{err}"
    );
}
