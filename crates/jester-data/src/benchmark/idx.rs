//! Reading the Fashion-MNIST IDX files that `apt-get install -y dataset-fashion-mnist` puts in
//! `/usr/share/datasets/fashion-mnist/` (docs/DATA.md, "Real data"): `train-images-idx3-ubyte.gz`,
//! `train-labels-idx1-ubyte.gz`, `t10k-…` for the test split; gzipped or not.
//!
//! IDX: a big-endian header `0x00 0x00 type ndim`, `ndim` big-endian u32 dimensions, then the data
//! in row-major order (type 0x08 = unsigned bytes).
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The command that installs the files, quoted in the error when they are missing.
pub(crate) const INSTALL: &str = "apt-get install -y dataset-fashion-mnist";

/// One split: `[N, rows, cols]` grey images (0 = black background) and their labels.
pub(crate) struct Items {
    pub rows: usize,
    pub cols: usize,
    pixels: Vec<u8>,
    /// The indices of each class's items, for drawing an item of a given class.
    pub by_class: Vec<Vec<usize>>,
}

impl Items {
    /// Item `i`'s pixels, `[rows, cols]` row-major.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }
}

/// Loads `{prefix}-images-idx3-ubyte[.gz]` and `{prefix}-labels-idx1-ubyte[.gz]` from `dir`;
/// `prefix` is `train` or `t10k`. Every one of `classes` classes must have an item.
pub(crate) fn load(dir: &Path, prefix: &str, classes: usize) -> Result<Items> {
    let (image_path, image_dims, pixels) =
        read_idx(dir, &format!("{prefix}-images-idx3-ubyte"), 3)?;
    let (label_path, label_dims, labels) =
        read_idx(dir, &format!("{prefix}-labels-idx1-ubyte"), 1)?;
    if image_dims[0] != label_dims[0] {
        return Err(Error::BadDataset {
            path: label_path,
            why: format!("{} labels for {} images", label_dims[0], image_dims[0]),
        });
    }
    let mut by_class = vec![Vec::new(); classes];
    for (i, &label) in labels.iter().enumerate() {
        let slot = by_class
            .get_mut(label as usize)
            .ok_or_else(|| Error::BadDataset {
                path: label_path.clone(),
                why: format!("label {label} of item {i} is not below {classes}"),
            })?;
        slot.push(i);
    }
    if let Some(empty) = by_class.iter().position(Vec::is_empty) {
        return Err(Error::BadDataset {
            path: image_path,
            why: format!("no item of class {empty}"),
        });
    }
    Ok(Items {
        rows: image_dims[1],
        cols: image_dims[2],
        pixels,
        by_class,
    })
}

/// The path read, the dimensions and the data of an unsigned-byte IDX file of `ndim` dimensions.
fn read_idx(dir: &Path, stem: &str, ndim: usize) -> Result<(PathBuf, Vec<usize>, Vec<u8>)> {
    let (gz, plain) = (dir.join(format!("{stem}.gz")), dir.join(stem));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let (path, mut bytes) = if gz.is_file() {
        let file = std::fs::File::open(&gz).map_err(io(&gz))?;
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(std::io::BufReader::new(file))
            .read_to_end(&mut bytes)
            .map_err(io(&gz))?;
        (gz, bytes)
    } else if plain.is_file() {
        let bytes = std::fs::read(&plain).map_err(io(&plain))?;
        (plain, bytes)
    } else {
        return Err(Error::MissingDataset {
            path: gz,
            install: INSTALL,
        });
    };
    let bad = |why: String| Error::BadDataset {
        path: path.clone(),
        why,
    };
    let header = 4 + 4 * ndim;
    if bytes.len() < header || bytes[..2] != [0, 0] || bytes[2] != 0x08 || bytes[3] as usize != ndim
    {
        return Err(bad(format!(
            "not an unsigned-byte IDX file of {ndim} dimensions"
        )));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected: usize = dims.iter().product();
    if bytes.len() - header != expected {
        return Err(bad(format!(
            "dimensions {dims:?} need {expected} bytes of data, the file has {}",
            bytes.len() - header
        )));
    }
    bytes.drain(..header);
    Ok((path, dims, bytes))
}
