//! Reading the embeddings users bring (e.g. from a PyTorch model) into [`PairEmbeddings`]:
//! a safetensors file with `image [B, D]`, `text [B, D]` (f32, f64, f16 or bf16) and scalars `t` (the temperature
//! itself, not its log) and `b`; or a pair of `.npy` files plus t and b. Every error names the file
//! and says how to fix it.
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use tch::{Kind, Tensor};

use crate::embeddings::PairEmbeddings;
use crate::error::{Error, Result};

const LAYOUT: &str = "expected tensors `image` [B, D] and `text` [B, D] (floats) and scalars `t` \
                      (the temperature itself, not its log) and `b`";

/// Reads one model's embeddings from a safetensors file (see the module docs for the layout).
pub fn read_safetensors(path: &Path) -> Result<PairEmbeddings> {
    let input = |what: String| Error::Input {
        path: path.to_owned(),
        what,
    };
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| input(format!("not a safetensors file ({e:?}); {LAYOUT}")))?;
    let names = || {
        let mut n: Vec<String> = file.names().into_iter().cloned().collect();
        n.sort();
        n.join(", ")
    };
    let tensor = |name: &str| {
        file.tensor(name).map_err(|_| {
            input(format!(
                "missing tensor `{name}` (found: {}); {LAYOUT}",
                names()
            ))
        })
    };
    let matrix = |name: &str| -> Result<Tensor> {
        let view = tensor(name)?;
        let kind = float_kind(view.dtype()).ok_or_else(|| {
            input(format!(
                "tensor `{name}` is {:?}; expected a floating-point type (F32, F64, F16 or BF16; \
                 in PyTorch: `.float()` before saving)",
                view.dtype()
            ))
        })?;
        if view.shape().len() != 2 {
            return Err(input(format!(
                "tensor `{name}` has shape {:?}; expected [B, D]",
                view.shape()
            )));
        }
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        Ok(Tensor::f_from_data_size(view.data(), &shape, kind)?)
    };
    let scalar = |name: &str| -> Result<f64> {
        let view = tensor(name)?;
        if view.shape().iter().product::<usize>() != 1 || view.shape().len() > 1 {
            return Err(input(format!(
                "`{name}` has shape {:?}; expected a scalar ([] or [1])",
                view.shape()
            )));
        }
        let d = view.data();
        match (view.dtype(), float_kind(view.dtype())) {
            // Via the shortest decimal of the f32, so 0.1f32 reads as 0.1, not 0.10000000149.
            (Dtype::F32, _) => Ok(shortest(f32::from_le_bytes([d[0], d[1], d[2], d[3]]))),
            (_, Some(kind)) => Ok(Tensor::f_from_data_size(d, &[], kind)?.double_value(&[])),
            (other, None) => Err(input(format!(
                "`{name}` is {other:?}; expected a floating-point scalar"
            ))),
        }
    };
    let (image, text) = (matrix("image")?, matrix("text")?);
    let (t, b) = (scalar("t")?, scalar("b")?);
    build(path, image, text, t, b)
}

/// Reads one model's embeddings from `.npy` files `image` and `text` (f32 `[B, D]`) and the loss's
/// `t` and `b`.
pub fn read_npy_pair(image: &Path, text: &Path, t: f64, b: f64) -> Result<PairEmbeddings> {
    let read = |path: &Path| -> Result<Tensor> {
        let input = |what: String| Error::Input {
            path: path.to_owned(),
            what,
        };
        if !path.exists() {
            return Err(input("no such file".into()));
        }
        let x =
            Tensor::read_npy(path).map_err(|e| input(format!("not a readable .npy file: {e}")))?;
        if !matches!(
            x.kind(),
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        ) {
            return Err(input(format!(
                "dtype is {:?}; expected a floating-point type (numpy: `.astype(np.float32)`)",
                x.kind()
            )));
        }
        if x.dim() != 2 {
            return Err(input(format!("shape is {:?}; expected [B, D]", x.size())));
        }
        Ok(x)
    };
    build(image, read(image)?, read(text)?, t, b)
}

/// The tch kind of a floating-point safetensors dtype; `None` for integers and the rest.
fn float_kind(dtype: Dtype) -> Option<Kind> {
    match dtype {
        Dtype::F32 => Some(Kind::Float),
        Dtype::F64 => Some(Kind::Double),
        Dtype::F16 => Some(Kind::Half),
        Dtype::BF16 => Some(Kind::BFloat16),
        _ => None,
    }
}

fn shortest(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

fn build(path: &Path, image: Tensor, text: Tensor, t: f64, b: f64) -> Result<PairEmbeddings> {
    if t.is_nan() || t <= 0.0 {
        return Err(Error::Input {
            path: path.to_owned(),
            what: format!(
                "t = {t} is not a temperature: it must be > 0 (store exp(t'), not the log-scale t')"
            ),
        });
    }
    PairEmbeddings::new(image, text, t, b).map_err(|e| match e {
        Error::Invalid { what, .. } => Error::Input {
            path: path.to_owned(),
            what,
        },
        other => other,
    })
}
