//! Captions to fixed-length token ids `[n, T]` for the text tower, through the Hugging Face
//! `tokenizers` crate: either a byte-level BPE trained here on the captions, or any
//! `tokenizer.json` a user brings (GPT-2, CLIP, BERT, T5, ... all load the same way).
//!
//! Every caption becomes exactly T ids: the tokenizer's own special tokens are added (ours appends
//! `<|endoftext|>`), the text is truncated on the right so that they still fit, and the rest is
//! padded on the right with [`TextTokenizer::pad_id`].
use std::path::Path;
use std::str::FromStr;

use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, Replace, Sequence, Strip, NFKC};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, Encoding, NormalizerWrapper, PaddingParams, PaddingStrategy, PostProcessor,
    Tokenizer, TruncationDirection,
};

use crate::error::{Error, Result};
use crate::text_prefix;

/// The padding token of a tokenizer trained by [`TextTokenizer::train_bpe`] (id 0).
pub const PAD_TOKEN: &str = "<|pad|>";
/// The end-of-text token appended to every caption by a trained tokenizer (id 1).
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Names that user tokenizers give their padding token, tried in order when the file has no
/// `padding` section.
const PAD_TOKEN_NAMES: [&str; 5] = [PAD_TOKEN, "<pad>", "[PAD]", "<PAD>", "<|padding|>"];

/// Training reads this many characters of a caption at most (a whitespace run counting as one):
/// the trainer's merges are quadratic in the length of a word, and web captions are far shorter.
const TRAINING_CHARS: usize = 2048;

/// Encoding first tries a prefix of this many characters per token needed (English BPE averages
/// about 4); texts whose tokens are longer get the prefix doubled until it gives enough.
const CHARS_PER_TOKEN: usize = 16;

/// Tokens a prefix must give beyond the T it is encoded for: those near its cut may differ from
/// the whole text's, and are dropped by the truncation.
const MARGIN_TOKENS: usize = 16;

/// A tokenizer that turns captions into fixed-length rows of ids.
#[derive(Clone, Debug)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    vocab_size: usize,
}

impl TextTokenizer {
    /// Trains a byte-level BPE on `captions`, deterministically: the same captions give the same
    /// `tokenizer.json` (merges are ranked by count, ties broken by token id).
    ///
    /// The pipeline, chosen for web captions:
    /// - normalise: NFKC (folds compatibility forms such as full-width letters and ligatures),
    ///   collapse every run of whitespace to one space and strip both ends (captions are scraped
    ///   alt-text, full of newlines and double spaces), lowercase (as CLIP: caption casing is
    ///   noise, and it halves the vocabulary spent on words);
    /// - pre-tokenise: GPT-2's byte-level split with a prefix space, so a word is the same token
    ///   at the start of a caption and inside it, and no character is ever unknown;
    /// - post-process: append `<|endoftext|>`, so the last real position is marked even when a
    ///   caption fills T.
    ///
    /// `vocab_size` counts the 256 byte symbols and the two special tokens ([`PAD_TOKEN`] = 0,
    /// [`END_OF_TEXT`] = 1), so it must be at least 258; merges stop early when no pair occurs at
    /// least `min_frequency` times. The captions are streamed (read on this thread, counted on
    /// another), so they need not fit in memory nor be `Send`. Only the first 2048 characters of
    /// a caption are trained on (whitespace runs counting as one), so time stays linear in them.
    pub fn train_bpe(
        captions: impl Iterator<Item = String>,
        vocab_size: usize,
        min_frequency: u64,
    ) -> Result<Self> {
        let alphabet = ByteLevel::alphabet();
        let smallest = alphabet.len() + 2;
        if vocab_size < smallest {
            return Err(Error::Config {
                what: "BPE tokenizer",
                why: format!(
                    "vocab_size = {vocab_size} is below {smallest} (256 bytes + 2 special tokens)"
                ),
            });
        }
        let failed = |op| {
            move |e: tokenizers::Error| Error::Tokenizer {
                op,
                why: e.to_string(),
            }
        };

        let mut inner = Tokenizer::new(BPE::default());
        let whitespace = Replace::new(ReplacePattern::Regex(r"\s+".into()), " ")
            .map_err(failed("build normaliser"))?;
        inner
            .with_normalizer(Some(Sequence::new(vec![
                NFKC.into(),
                NormalizerWrapper::Replace(whitespace),
                Strip::new(true, true).into(),
                Lowercase.into(),
            ])))
            .with_pre_tokenizer(Some(ByteLevel::default()))
            .with_decoder(Some(ByteLevel::default()));

        let special = [PAD_TOKEN, END_OF_TEXT].map(|t| AddedToken::from(t, true));
        let mut trainer: TrainerWrapper = BpeTrainer::builder()
            .vocab_size(vocab_size)
            .min_frequency(min_frequency)
            .show_progress(false)
            .special_tokens(special.to_vec())
            .initial_alphabet(alphabet.into_iter().collect())
            .build()
            .into();

        // The trainer wants a `Send` iterator; a caption source (a shard reader, say) need not be
        // one, so it is drained here and handed over through a bounded channel.
        let (sender, receiver) = std::sync::mpsc::sync_channel::<String>(1024);
        let trained = std::thread::scope(|scope| {
            let (tokenizer, trainer) = (&mut inner, &mut trainer);
            let training =
                scope.spawn(move || tokenizer.train(trainer, receiver.into_iter()).map(|_| ()));
            for mut caption in captions {
                let keep = text_prefix::prefix(&caption, TRAINING_CHARS).len();
                if keep < caption.len() {
                    caption.truncate(keep);
                    caption.shrink_to_fit(); // up to 1024 of them wait in the channel
                }
                if sender.send(caption).is_err() {
                    break; // training stopped early; its error is reported below
                }
            }
            drop(sender);
            training
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        trained.map_err(failed("train"))?;

        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| Error::Tokenizer {
                op: "train",
                why: format!("{token} is missing from the trained vocabulary"),
            })
        };
        let (pad_id, eot_id) = (id(PAD_TOKEN)?, id(END_OF_TEXT)?);
        let append_eot = TemplateProcessing::builder()
            .try_single(format!("$A {END_OF_TEXT}"))
            .and_then(|b| b.try_pair(format!("$A {END_OF_TEXT} $B:1 {END_OF_TEXT}:1")))
            .map_err(|why| Error::Tokenizer {
                op: "build post-processor",
                why: why.to_string(),
            })?
            .special_tokens(vec![(END_OF_TEXT, eot_id)])
            .build()
            .map_err(|e| Error::Tokenizer {
                op: "build post-processor",
                why: e.to_string(),
            })?;
        inner.with_post_processor(Some(append_eot));
        // Recorded in the file, so that `from_file` finds the pad token the same way as for a
        // user's tokenizer.
        inner.with_padding(Some(PaddingParams {
            pad_id,
            pad_token: PAD_TOKEN.into(),
            ..PaddingParams::default()
        }));
        Ok(Self::wrap(inner))
    }

    /// Loads any Hugging Face `tokenizer.json` (BPE, WordPiece, WordLevel or Unigram; any
    /// normaliser, pre-tokeniser and post-processor).
    ///
    /// The file's own `truncation` is dropped and its `padding` kept only for the pad token:
    /// [`encode`](Self::encode) truncates and pads to the T it is given, always on the right.
    /// The pad id is the file's `padding.pad_id`; failing that the id of the first of `<|pad|>`,
    /// `<pad>`, `[PAD]`, `<PAD>`, `<|padding|>` in the vocabulary; failing that **0**, which is
    /// then also a real token (as with open_clip's CLIP tokenizer): a text tower must not infer
    /// a mask from `id == pad_id` for such a tokenizer.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let inner = Tokenizer::from_str(&json).map_err(|e| Error::TokenizerFile {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        Ok(Self::wrap(inner))
    }

    /// Puts a loaded or trained tokenizer into the state `encode` relies on.
    fn wrap(mut inner: Tokenizer) -> Self {
        inner
            .with_truncation(None)
            .expect("clearing truncation cannot fail");
        let pad = match inner.get_padding() {
            Some(padding) => Some((padding.pad_id, padding.pad_token.clone())),
            None => PAD_TOKEN_NAMES
                .iter()
                .find_map(|&name| inner.token_to_id(name).map(|id| (id, name.to_owned()))),
        };
        let pad_id = pad.as_ref().map_or(0, |(id, _)| *id);
        // Longest-in-batch padding of a single encoding is a no-op, so `post_process` pads
        // nothing, while the pad token survives `save` → `from_file`.
        inner.with_padding(pad.map(|(pad_id, pad_token)| PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_to_multiple_of: None,
            pad_id,
            pad_token,
            ..PaddingParams::default()
        }));
        // A caption that happens to contain "<|endoftext|>" or "[SEP]" is text, not a marker.
        inner.set_encode_special_tokens(true);
        let largest = inner.get_vocab(true).into_values().fold(pad_id, u32::max);
        Self {
            vocab_size: largest as usize + 1,
            inner,
            pad_id,
        }
    }

    /// Writes the `tokenizer.json` (pretty-printed, byte-identical for identical tokenizers).
    /// Atomic ([`crate::atomic`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::atomic::write_atomic(path.as_ref(), self.to_json()?.as_bytes())
    }

    /// The `tokenizer.json` text [`save`](Self::save) writes.
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(true).map_err(|e| Error::Tokenizer {
            op: "serialise",
            why: e.to_string(),
        })
    }

    /// A tokenizer from [`to_json`](Self::to_json)'s text (e.g. sent by another process);
    /// `origin` names where it came from in errors.
    pub fn from_json(json: &str, origin: &Path) -> Result<Self> {
        let inner = Tokenizer::from_str(json).map_err(|e| Error::TokenizerFile {
            path: origin.to_owned(),
            why: e.to_string(),
        })?;
        Ok(Self::wrap(inner))
    }

    /// One caption as exactly `context_length` (T) ids: the tokenizer's special tokens added,
    /// the text truncated on the right so that they fit (if T is smaller than the special tokens
    /// alone, the result is cut to T), then padded on the right with [`pad_id`](Self::pad_id).
    ///
    /// Fails only where the tokenizer itself does, e.g. a WordPiece or WordLevel model whose
    /// `unk_token` is missing from its vocabulary meeting an unknown word.
    ///
    /// Time is linear in the part of the text that fills T, however long the text: only a
    /// prefix is tokenised, long enough to give T tokens and a margin.
    pub fn encode(&self, text: &str, context_length: usize) -> Result<Vec<u32>> {
        Ok(self.encode_with_length(text, context_length)?.0)
    }

    /// [`encode`](Self::encode), and how many of the T ids are the caption's own (special tokens
    /// included) before the padding: the text tower pools at position `length − 1`, the
    /// end-of-text marker for jester's tokenizers. (The pad id can be a real token of a user's
    /// tokenizer, so padding cannot be found by id afterwards.)
    pub fn encode_with_length(
        &self,
        text: &str,
        context_length: usize,
    ) -> Result<(Vec<u32>, usize)> {
        let failed = |e: tokenizers::Error| Error::Tokenizer {
            op: "encode",
            why: format!("{}: {e}", preview(text)),
        };
        let special = self
            .inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        let needed = context_length.saturating_sub(special);
        let mut encoding = self.tokens(text, needed).map_err(failed)?;
        encoding.truncate(needed, 0, TruncationDirection::Right);
        let encoding = self
            .inner
            .post_process(encoding, None, true)
            .map_err(failed)?;
        let mut ids = encoding.get_ids().to_vec();
        ids.truncate(context_length);
        let length = ids.len();
        ids.resize(context_length, self.pad_id);
        Ok((ids, length))
    }

    /// The encoding (no special tokens) of the shortest prefix of `text` tried that gives
    /// `needed` tokens and [`MARGIN_TOKENS`] more, or of all of it. The first `needed` are those
    /// of the whole text for any tokenizer whose tokens depend on no more than the next few words
    /// (BPE, Unigram, WordPiece): the prefix is cut before whitespace when it can be, inside a
    /// word only when its last half is that one word (over 100 characters: WordPiece's `[UNK]`
    /// limit), and the tokens near the cut are beyond the margin.
    fn tokens(&self, text: &str, needed: usize) -> tokenizers::Result<Encoding> {
        let mut budget = (needed + MARGIN_TOKENS) * CHARS_PER_TOKEN;
        loop {
            let part = text_prefix::prefix(text, budget);
            let encoding = self.inner.encode_fast(part, false)?;
            if part.len() == text.len() || encoding.len() >= needed + MARGIN_TOKENS {
                return Ok(encoding);
            }
            budget = budget.saturating_mul(2);
        }
    }

    /// Captions as row-major ids `[n, T]` (n = `texts.len()`, T = `context_length`), each row as
    /// [`encode`](Self::encode) makes it.
    pub fn encode_batch(
        &self,
        texts: &[impl AsRef<str>],
        context_length: usize,
    ) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(texts.len() * context_length);
        for text in texts {
            ids.extend(self.encode(text.as_ref(), context_length)?);
        }
        Ok(ids)
    }

    /// The rows the text tower's embedding table needs: one more than the largest id the
    /// tokenizer (or its pad id) can produce. Equals the number of tokens when ids are contiguous.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The id that fills the positions after a caption's tokens (see
    /// [`from_file`](Self::from_file) for how it is found).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

/// A text as quoted in an error: its first 64 characters, so that a long caption stays readable.
fn preview(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}
