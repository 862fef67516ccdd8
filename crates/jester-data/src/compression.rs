//! Compressed shards. WebDataset and img2dataset can write `.tar.gz`: a gzip stream is known by
//! its magic bytes, whatever the file is called, and read through a decoder. Other compressions
//! are refused by name, with the command that undoes them.
use std::path::Path;

use crate::error::{Error, Result};

/// How a shard's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
}

/// Magic bytes of the compressions jester does not read: format, and the command to undo it.
const REFUSED: [(&[u8], &str, &str); 3] = [
    (b"\x28\xb5\x2f\xfd", "zstd", "zstd -d"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
];

/// The compression of a shard from its first bytes (at least 6 of them, when the file has them).
pub(crate) fn detect(head: &[u8], path: &Path) -> Result<Compression> {
    if head.starts_with(b"\x1f\x8b") {
        return Ok(Compression::Gzip);
    }
    match REFUSED.iter().find(|(magic, _, _)| head.starts_with(magic)) {
        Some(&(_, format, command)) => Err(Error::CompressedShard {
            path: path.to_owned(),
            format,
            command,
        }),
        None => Ok(Compression::None),
    }
}
