//! Naming shard sets as users do: files, folders (every shard in it: `*.tar`, `*.tar.gz`,
//! `*.tgz`), globs (`data/*.tar`) and brace ranges (`data/{00000..00127}.tar.gz`, zero padding
//! kept), several at once.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file names a folder's shards end with: plain tars and the gzip-compressed ones
/// WebDataset and img2dataset can write.
const SHARD_SUFFIXES: [&str; 3] = [".tar", ".tar.gz", ".tgz"];

fn is_shard_name(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    SHARD_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

/// Every shard the specs name, in order (a folder's and a glob's shards sorted by name).
pub fn expand_shards<S: AsRef<str>>(specs: &[S]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for spec in specs {
        let spec = spec.as_ref();
        let before = out.len();
        for name in expand_braces(spec)? {
            let path = Path::new(&name);
            if path.is_dir() {
                let mut tars: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(|source| Error::Io {
                        path: path.to_owned(),
                        source,
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| is_shard_name(p) && p.is_file())
                    .collect();
                tars.sort();
                out.extend(tars);
            } else if name.contains(['*', '?', '[']) {
                let mut matched: Vec<PathBuf> = glob::glob(&name)
                    .map_err(|e| Error::Shards {
                        spec: spec.into(),
                        why: format!("bad glob: {e}"),
                    })?
                    .filter_map(|p| p.ok())
                    .collect();
                matched.sort();
                out.extend(matched);
            } else if path.is_file() {
                out.push(path.to_owned());
            } else {
                return Err(Error::Shards {
                    spec: spec.into(),
                    why: format!("{name}: no such file or folder"),
                });
            }
        }
        if out.len() == before {
            return Err(Error::Shards {
                spec: spec.into(),
                why: "names no shard (.tar, .tar.gz or .tgz file)".into(),
            });
        }
    }
    Ok(out)
}

/// `a{000..002}b` → `a000b`, `a001b`, `a002b`; several ranges multiply out; `{x,y}` lists too.
fn expand_braces(spec: &str) -> Result<Vec<String>> {
    let Some(open) = spec.find('{') else {
        return Ok(vec![spec.to_owned()]);
    };
    let bad = |why: &str| Error::Shards {
        spec: spec.into(),
        why: why.into(),
    };
    let close = spec[open..]
        .find('}')
        .map(|i| open + i)
        .ok_or_else(|| bad("unclosed '{'"))?;
    let (head, body, tail) = (&spec[..open], &spec[open + 1..close], &spec[close + 1..]);
    let items: Vec<String> = if let Some((a, b)) = body.split_once("..") {
        let (lo, hi) = (a.parse::<u64>(), b.parse::<u64>());
        let (Ok(lo), Ok(hi)) = (lo, hi) else {
            return Err(bad("a range must be {FIRST..LAST} with decimal numbers"));
        };
        if lo > hi || hi - lo > 10_000_000 {
            return Err(bad(
                "a range must run upwards, over at most 10 million numbers",
            ));
        }
        let width = a.len();
        (lo..=hi).map(|i| format!("{i:0width$}")).collect()
    } else {
        body.split(',').map(str::to_owned).collect()
    };
    let rests = expand_braces(tail)?;
    Ok(items
        .iter()
        .flat_map(|item| rests.iter().map(move |rest| format!("{head}{item}{rest}")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brace_ranges_keep_padding_and_order() {
        assert_eq!(
            expand_braces("d/{00008..00011}.tar").unwrap(),
            ["d/00008.tar", "d/00009.tar", "d/00010.tar", "d/00011.tar"]
        );
        assert_eq!(
            expand_braces("{a,b}-{1..2}").unwrap(),
            ["a-1", "a-2", "b-1", "b-2"]
        );
        assert_eq!(expand_braces("plain.tar").unwrap(), ["plain.tar"]);
        assert!(expand_braces("d/{3..1}.tar").is_err());
        assert!(expand_braces("d/{1..x}.tar").is_err());
        assert!(expand_braces("d/{1..2.tar").is_err());
    }

    #[test]
    fn folders_globs_and_missing_names() {
        let dir = std::env::temp_dir().join(format!("jester-shards-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "00001.tar",
            "00000.tar",
            "notes.txt",
            "00002.tar.gz",
            "00003.tgz",
            "x.gz",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let d = dir.display().to_string();
        let want = vec![dir.join("00000.tar"), dir.join("00001.tar")];
        let compressed = [dir.join("00002.tar.gz"), dir.join("00003.tgz")];
        assert_eq!(
            expand_shards(&[&d]).unwrap(),
            [want.as_slice(), &compressed].concat()
        );
        assert_eq!(expand_shards(&[format!("{d}/*.tar")]).unwrap(), want);
        assert_eq!(
            expand_shards(&[format!("{d}/{{00000..00001}}.tar")]).unwrap(),
            want
        );
        let err = expand_shards(&[format!("{d}/{{00000..00002}}.tar")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("00002.tar"), "{err}");
        assert!(expand_shards(&[format!("{d}/*.zip")])
            .unwrap_err()
            .to_string()
            .contains("names no shard"));
    }
}
