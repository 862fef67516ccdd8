//! One sample of a WebDataset shard: the members that share a key (docs/DATA.md): `KEY.jpg` (or png,
//! webp, svg), `KEY.txt` (caption), `KEY.json` (metadata, ground truth), `KEY.npy` (an embedding).
use std::collections::BTreeMap;

/// The raw members of one sample, before decoding: extension (the part of the member name after the
/// key's first dot, e.g. `jpg`, `txt`, `json`, `npy`) → bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawSample {
    /// The member names up to the first dot, e.g. `000123`.
    pub key: String,
    pub members: BTreeMap<String, Vec<u8>>,
}

impl RawSample {
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            members: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) the member `KEY.extension`.
    pub fn with(mut self, extension: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.members.insert(extension.to_owned(), bytes.into());
        self
    }

    pub fn member(&self, extension: &str) -> Option<&[u8]> {
        self.members.get(extension).map(Vec::as_slice)
    }
}

/// The image member extensions jester decodes, in order of preference.
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "svg"];
