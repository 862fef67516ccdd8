//! Bad samples inside a corpus are skipped and counted by reason, never trained on silently
//! (docs/DATA.md); the counts are reported at the end of every command and kept in checkpoints.
use std::collections::BTreeMap;

/// Why a sample was skipped.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// The shard ended inside this sample (a truncated tar).
    TruncatedShard,
    /// A member larger than the reader's limit.
    MemberTooLarge,
    /// No `jpg`, `jpeg`, `png`, `webp` or `svg` member.
    NoImage,
    /// A zero-length image member.
    EmptyImage,
    /// Image bytes no decoder accepts.
    UndecodableImage,
    /// Declared width × height beyond the limit; refused before decoding.
    ImageTooLarge,
    /// Neither a `.txt` member nor the caption field in `.json`.
    NoCaption,
    /// A caption that is empty or only whitespace.
    EmptyCaption,
    /// A caption that is not UTF-8.
    NonUtf8Caption,
    /// A caption longer than `DecodeOptions::max_caption_bytes`; refused before it is read.
    CaptionTooLong,
    /// A `.json` member that does not parse.
    BadJson,
    /// A `.json` member larger than `DecodeOptions::max_json_bytes`; refused before parsing.
    JsonTooLarge,
    /// A key seen before in the same data (shards are read in order; the first copy is used):
    /// reference caches are looked up by key, so a second copy would be ambiguous.
    DuplicateKey,
    /// A caption the tokenizer refuses (e.g. a WordPiece vocabulary without its unknown token).
    Untokenizable,
}

impl SkipReason {
    pub fn name(self) -> &'static str {
        match self {
            Self::TruncatedShard => "truncated-shard",
            Self::MemberTooLarge => "member-too-large",
            Self::NoImage => "no-image",
            Self::EmptyImage => "empty-image",
            Self::UndecodableImage => "undecodable-image",
            Self::ImageTooLarge => "image-too-large",
            Self::NoCaption => "no-caption",
            Self::EmptyCaption => "empty-caption",
            Self::NonUtf8Caption => "non-utf8-caption",
            Self::CaptionTooLong => "caption-too-long",
            Self::BadJson => "bad-json",
            Self::JsonTooLarge => "json-too-large",
            Self::DuplicateKey => "duplicate-key",
            Self::Untokenizable => "untokenizable",
        }
    }
}

/// Skipped samples by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SkipCounts(pub BTreeMap<SkipReason, u64>);

impl SkipCounts {
    pub fn add(&mut self, reason: SkipReason) {
        *self.0.entry(reason).or_default() += 1;
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
    pub fn get(&self, reason: SkipReason) -> u64 {
        self.0.get(&reason).copied().unwrap_or(0)
    }
    pub fn merge(&mut self, other: &SkipCounts) {
        for (&k, &v) in &other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }
}

impl std::fmt::Display for SkipCounts {
    /// "none", or "3 skipped: 2 undecodable-image, 1 empty-caption".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return write!(f, "no samples skipped");
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{v} {}", k.name()))
            .collect();
        write!(f, "{} skipped: {}", self.total(), parts.join(", "))
    }
}
