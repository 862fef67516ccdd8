//! What an embedding cache was computed from: the shards (name, size and a hash of their first
//! bytes), the model's weights and its tokenizer. A cache is looked up by sample key, and keys
//! are only unique within one shard set (every split of a benchmark numbers its samples from 0),
//! so a cache embedded from other shards would otherwise match silently. Training checks every
//! shard it reads against the cache's list and refuses a mismatch, saying what differs.
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How many leading bytes of a shard are hashed: its first members (keys and payloads), enough to
/// tell two splits' shards apart without reading terabytes at the start of every run.
const HEAD_BYTES: u64 = 1 << 16;

const EMBED: &str = "embed the shards you train on: `jester embed --model REFERENCE --data SHARDS \
                     --out FILE`";

/// One shard, as far as a cache needs to recognise it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFingerprint {
    /// The file name (not the path: a corpus may move).
    pub name: String,
    pub bytes: u64,
    /// SHA-256 of the first 64 KiB, hex.
    pub head: String,
}

impl ShardFingerprint {
    pub fn of(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let bytes = file.metadata().map_err(io)?.len();
        let mut head = Vec::new();
        file.take(HEAD_BYTES).read_to_end(&mut head).map_err(io)?;
        Ok(Self {
            name: path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            bytes,
            head: hex(&Sha256::digest(&head)),
        })
    }
}

/// A cache's provenance, stored as JSON in its safetensors metadata entry `provenance`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub shards: Vec<ShardFingerprint>,
    /// SHA-256 of the weights file, hex.
    pub model: String,
    /// The checkpoint's step when the weights were not the run's final ones.
    #[serde(default)]
    pub checkpoint_step: Option<usize>,
    /// SHA-256 of `tokenizer.json`, hex.
    pub tokenizer: String,
}

impl Provenance {
    /// The provenance of embedding `shards` with the weights and tokenizer files given.
    pub fn compute(
        shards: &[PathBuf],
        weights: &Path,
        tokenizer: &Path,
        checkpoint_step: Option<usize>,
    ) -> Result<Self> {
        Ok(Self {
            shards: shards
                .iter()
                .map(|s| ShardFingerprint::of(s))
                .collect::<Result<_>>()?,
            model: file_hash(weights)?,
            checkpoint_step,
            tokenizer: file_hash(tokenizer)?,
        })
    }

    /// Checks that every shard in `shards` is one the cache was computed from; the error says
    /// which shard differs and how.
    pub fn check_covers(&self, cache: &Path, shards: &[PathBuf]) -> Result<()> {
        for path in shards {
            let mine = ShardFingerprint::of(path)?;
            let problem = match self.shards.iter().find(|s| s.name == mine.name) {
                None => format!(
                    "training reads {} but the cache was embedded from other shards ({}); {EMBED}",
                    path.display(),
                    summarise(&self.shards)
                ),
                Some(theirs) if theirs.bytes != mine.bytes => format!(
                    "training reads {} ({} bytes) but the cache was embedded from a {} of {} \
                     bytes: another shard under the same name; {EMBED}",
                    path.display(),
                    mine.bytes,
                    theirs.name,
                    theirs.bytes
                ),
                Some(theirs) if theirs.head != mine.head => format!(
                    "training reads {} but the cache's {} (same size) holds other samples \
                     (their first bytes differ); {EMBED}",
                    path.display(),
                    theirs.name
                ),
                Some(_) => continue,
            };
            return Err(Error::Input {
                path: cache.to_owned(),
                what: problem,
            });
        }
        Ok(())
    }

    /// One line for logs: model and tokenizer hashes (abbreviated), shards, checkpoint.
    pub fn describe(&self) -> String {
        format!(
            "model {} ({}), tokenizer {}, {}",
            &self.model[..12.min(self.model.len())],
            self.checkpoint_step
                .map_or("final weights".into(), |s| format!("checkpoint step {s}")),
            &self.tokenizer[..12.min(self.tokenizer.len())],
            summarise(&self.shards)
        )
    }
}

fn summarise(shards: &[ShardFingerprint]) -> String {
    match shards {
        [] => "no shards".into(),
        [one] => format!("1 shard: {}", one.name),
        [first, .., last] => format!("{} shards: {} … {}", shards.len(), first.name, last.name),
    }
}

/// SHA-256 of a whole file, hex, streamed.
pub fn file_hash(path: &Path) -> Result<String> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io)?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jester-prov-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_shard_of_another_split_under_the_same_name_is_refused() {
        let d = dir("split");
        std::fs::create_dir_all(d.join("pool")).unwrap();
        std::fs::create_dir_all(d.join("curated")).unwrap();
        let pool = d.join("pool/00000.tar");
        let curated = d.join("curated/00000.tar");
        let other = d.join("pool/00001.tar");
        std::fs::write(&pool, vec![1u8; 5000]).unwrap();
        std::fs::write(&curated, vec![2u8; 5000]).unwrap();
        std::fs::write(&other, vec![1u8; 7000]).unwrap();
        let (weights, tokenizer) = (d.join("w"), d.join("t"));
        std::fs::write(&weights, b"weights").unwrap();
        std::fs::write(&tokenizer, b"tokenizer").unwrap();
        let made = Provenance::compute(std::slice::from_ref(&curated), &weights, &tokenizer, None)
            .unwrap();
        let cache = d.join("cache.safetensors");
        made.check_covers(&cache, &[curated]).unwrap();
        let err = made.check_covers(&cache, &[pool]).unwrap_err().to_string();
        assert!(
            err.contains("first bytes differ") && err.contains("cache.safetensors"),
            "{err}"
        );
        let err = made.check_covers(&cache, &[other]).unwrap_err().to_string();
        assert!(
            err.contains("00001.tar") && err.contains("other shards"),
            "{err}"
        );
        // Round trip through JSON (the cache's metadata).
        let json = serde_json::to_string(&made).unwrap();
        assert_eq!(serde_json::from_str::<Provenance>(&json).unwrap(), made);
        assert_eq!(made.model, file_hash(&weights).unwrap());
        assert_eq!(made.model.len(), 64);
    }
}
