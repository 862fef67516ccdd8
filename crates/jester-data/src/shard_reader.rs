//! Streaming one WebDataset shard: tar members grouped into samples by key (the member name up to
//! its first dot), consecutive members only, as WebDataset does. Nothing but the current sample is
//! held in memory.
//!
//! A file that is not a tar at all is an error naming it. A tar that breaks off (truncated, or
//! garbage after some members) yields the samples before the break and one
//! [`SkipReason::TruncatedShard`] for the sample it cut. A gzip-compressed tar (`.tar.gz`,
//! `.tgz`, or any name: it is known by its magic bytes) is read through a decoder, and breaks
//! off the same way when its stream does.
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

use crate::compression::{detect, Compression};
use crate::error::{Error, Result};
use crate::sample::RawSample;
use crate::skip::SkipReason;

/// Members above this size are skipped (a 20k × 20k RGB image is 1.2 GB raw; real encoded images are
/// far below it).
pub const MAX_MEMBER_BYTES: u64 = 256 << 20;

/// What reading a shard produced, in stream order.
#[derive(Debug)]
pub enum ShardItem {
    Sample(RawSample),
    Skip(SkipReason),
}

/// Calls `each` with every sample (or skip) of the shard at `path`, in order. Errors only when the
/// file cannot be opened or is not a tar archive (plain or gzip-compressed).
pub fn read_shard(path: &Path, each: impl FnMut(ShardItem)) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(Error::NotATar {
            path: path.to_owned(),
            why: "the file is empty".into(),
        });
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    match detect(reader.fill_buf().map_err(io)?, path)? {
        Compression::None => read_tar(reader, path, each),
        Compression::Gzip => {
            // Multi: `bgzip` and parallel compressors write several gzip members end to end.
            // The tar reader asks for 512-byte blocks, so the decoder's output is buffered.
            let gunzip = BufReader::with_capacity(1 << 16, MultiGzDecoder::new(reader));
            read_tar(gunzip, path, each).map_err(|e| match e {
                Error::NotATar { path, why } => Error::BadGzipShard { path, why },
                e => e,
            })
        }
    }
}

/// The tar reader's complaint in words, without the raw bytes it quotes ("numeric field did not
/// have utf-8 text: <header bytes> when getting cksum for <name bytes>" → its words before the
/// bytes); anything left that is not printable ASCII becomes '?'.
fn tar_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let words = text.split(": ").next().unwrap_or_default();
    words
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// [`read_shard`] on any byte stream; `path` only names it in errors. (The fuzz target's entry.)
pub fn read_tar(reader: impl Read, path: &Path, mut each: impl FnMut(ShardItem)) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| Error::NotATar {
        path: path.to_owned(),
        why: tar_reason(&e),
    })?;
    let mut current: Option<RawSample> = None;
    let mut seen_any = false;
    let mut oversized = false;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) if !seen_any => {
                return Err(Error::NotATar {
                    path: path.to_owned(),
                    why: tar_reason(&e),
                });
            }
            Err(_) => {
                // The archive breaks off here: the sample being read (or, between samples, the
                // next one) is lost.
                each(ShardItem::Skip(SkipReason::TruncatedShard));
                return Ok(());
            }
        };
        seen_any = true;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = match entry.path() {
            Ok(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Err(_) => continue,
        };
        // The key is the whole path up to the first dot of the file name (WebDataset keeps folders).
        let full = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix_len = full.len() - name.len();
        let Some(dot) = name.find('.') else { continue };
        let key = format!("{}{}", &full[..prefix_len], &name[..dot]);
        let extension = name[dot + 1..].to_ascii_lowercase();
        if current.as_ref().is_some_and(|s| s.key != key) {
            let done = current.take().expect("checked");
            if std::mem::take(&mut oversized) {
                each(ShardItem::Skip(SkipReason::MemberTooLarge));
            } else {
                each(ShardItem::Sample(done));
            }
        }
        let sample = current.get_or_insert_with(|| RawSample::new(key));
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > MAX_MEMBER_BYTES {
            oversized = true;
            continue;
        }
        let mut bytes = Vec::with_capacity(size as usize);
        if entry.read_to_end(&mut bytes).is_err() || (bytes.len() as u64) < size {
            // The archive broke off inside this member.
            each(ShardItem::Skip(SkipReason::TruncatedShard));
            return Ok(());
        }
        sample.members.insert(extension, bytes);
    }
    if let Some(done) = current {
        if oversized {
            each(ShardItem::Skip(SkipReason::MemberTooLarge));
        } else {
            each(ShardItem::Sample(done));
        }
    }
    Ok(())
}
