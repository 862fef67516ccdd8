//! A folder of images plus a captions file (CSV, TSV or JSONL mapping file name → caption) into
//! WebDataset shards. Images are stored as they are (no re-encoding); each sample's `.json` keeps
//! the original file name.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sample::RawSample;
use crate::shard_writer::ShardWriter;

/// What a conversion did, reported at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConvertReport {
    pub samples: u64,
    pub shards: Vec<PathBuf>,
    /// Captions file rows whose image is not in the folder.
    pub missing_image: u64,
    /// Files whose extension is not jpg, jpeg, png, webp or svg.
    pub unsupported_extension: u64,
    /// Rows with an empty caption.
    pub empty_caption: u64,
}

/// The (file, caption) rows of a captions file. CSV/TSV need a header naming a file column
/// (`file`, `filename`, `image`, `path` or `name`) and a caption column (`caption` or `text`); JSONL
/// lines are objects with such keys.
pub fn read_captions(path: &Path) -> Result<Vec<(String, String)>> {
    let bad = |why: String| Error::Input {
        path: path.to_owned(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    const FILE: [&str; 5] = ["file", "filename", "image", "path", "name"];
    const CAPTION: [&str; 2] = ["caption", "text"];
    match extension.as_str() {
        "jsonl" | "ndjson" => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, line)| {
                let v: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", n + 1)))?;
                let field = |names: &[&str]| {
                    names
                        .iter()
                        .find_map(|k| v.get(*k).and_then(|x| x.as_str()).map(str::to_owned))
                };
                match (field(&FILE), field(&CAPTION)) {
                    (Some(f), Some(c)) => Ok((f, c)),
                    _ => Err(bad(format!(
                        "line {}: needs a file key ({}) and a caption key ({})",
                        n + 1,
                        FILE.join("/"),
                        CAPTION.join("/")
                    ))),
                }
            })
            .collect(),
        "csv" | "tsv" | "tab" => {
            let delimiter = if extension == "csv" { b',' } else { b'\t' };
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .flexible(false)
                .from_reader(text.as_bytes());
            let headers = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
            let column = |names: &[&str]| {
                headers
                    .iter()
                    .position(|h| names.contains(&h.trim().to_ascii_lowercase().as_str()))
            };
            let (Some(file), Some(caption)) = (column(&FILE), column(&CAPTION)) else {
                return Err(bad(format!(
                    "the header {:?} needs a file column ({}) and a caption column ({})",
                    headers.iter().collect::<Vec<_>>(),
                    FILE.join("/"),
                    CAPTION.join("/")
                )));
            };
            reader
                .records()
                .enumerate()
                .map(|(n, r)| {
                    let r = r.map_err(|e| bad(format!("row {}: {e}", n + 2)))?;
                    Ok((r[file].to_owned(), r[caption].to_owned()))
                })
                .collect()
        }
        _ => Err(bad(
            "unknown captions format; use .csv, .tsv or .jsonl".into()
        )),
    }
}

/// Writes shards of `samples_per_shard` into `out` from the images in `images` named by
/// `captions`.
pub fn convert(
    images: &Path,
    captions: &Path,
    out: &Path,
    samples_per_shard: usize,
) -> Result<ConvertReport> {
    if !images.is_dir() {
        return Err(Error::Input {
            path: images.to_owned(),
            why: "not a folder of images".into(),
        });
    }
    let rows = read_captions(captions)?;
    let mut writer = ShardWriter::new(out, samples_per_shard)?;
    let mut report = ConvertReport::default();
    for (file, caption) in rows {
        let path = images.join(&file);
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !crate::sample::IMAGE_EXTENSIONS.contains(&extension.as_str()) {
            report.unsupported_extension += 1;
            continue;
        }
        if caption.trim().is_empty() {
            report.empty_caption += 1;
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            report.missing_image += 1;
            continue;
        };
        let key = format!("{:09}", report.samples);
        let meta = serde_json::json!({ "file": file, "caption": caption });
        writer.write(
            &RawSample::new(key)
                .with(&extension, bytes)
                .with("txt", caption.trim())
                .with("json", meta.to_string()),
        )?;
        report.samples += 1;
    }
    report.shards = writer.finish()?;
    Ok(report)
}
