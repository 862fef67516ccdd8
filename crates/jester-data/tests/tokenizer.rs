//! `TextTokenizer`: training, the fixed-length `[n, T]` contract, files from elsewhere.
use std::path::PathBuf;

use jester_data::tokenizer::{TextTokenizer, END_OF_TEXT, PAD_TOKEN};
use jester_data::Error;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{PaddingParams, Tokenizer};

/// A fresh directory per test (tests run in parallel in one process), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("jester-tokenizer-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(test: &str) -> Scratch {
    Scratch::new(test)
}

fn captions() -> Vec<String> {
    let subjects = [
        "a dog",
        "a cat",
        "two birds",
        "the red car",
        "an old man",
        "a bowl of soup",
    ];
    let places = [
        "on the beach",
        "in a park",
        "next to a house",
        "under a tree",
        "at night",
    ];
    let mut out = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        for (j, p) in places.iter().enumerate() {
            out.push(format!("A photo of {s} {p}."));
            if (i + j) % 3 == 0 {
                out.push(format!("{s} sitting {p}, seen from above"));
            }
        }
    }
    out
}

fn trained(vocab_size: usize) -> TextTokenizer {
    TextTokenizer::train_bpe(captions().into_iter(), vocab_size, 2).unwrap()
}

#[test]
fn a_tokenizer_can_be_shared_by_loader_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TextTokenizer>();
}

#[test]
fn training_is_deterministic_to_the_byte() {
    let dir = scratch("determinism");
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    trained(400).save(&a).unwrap();
    trained(400).save(&b).unwrap();
    let json = std::fs::read_to_string(&a).unwrap();
    assert_eq!(json, std::fs::read_to_string(&b).unwrap());
    // It learnt merges beyond the byte alphabet.
    assert!(json.contains("\"merges\""));
    assert!(trained(400).vocab_size() > 258);
}

#[test]
fn save_then_load_encodes_identically() {
    let dir = scratch("round-trip");
    let path = dir.join("tokenizer.json");
    let original = trained(400);
    original.save(&path).unwrap();
    assert!(!dir.join("tokenizer.json.tmp").exists());
    let loaded = TextTokenizer::from_file(&path).unwrap();
    let texts = captions();
    assert_eq!(
        original.encode_batch(&texts, 16).unwrap(),
        loaded.encode_batch(&texts, 16).unwrap()
    );
    assert_eq!(original.pad_id(), loaded.pad_id());
    assert_eq!(original.vocab_size(), loaded.vocab_size());
    // Saving the loaded one writes the same file.
    let again = dir.join("again.json");
    loaded.save(&again).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn every_row_is_exactly_t_ids_with_end_of_text_kept() {
    let tokenizer = trained(400);
    let (pad, eot) = (tokenizer.pad_id(), 1);
    assert_eq!(pad, 0, "{PAD_TOKEN} is the first special token");

    // Short: tokens, end-of-text, then padding.
    let short = tokenizer.encode("a dog", 12).unwrap();
    assert_eq!(short.len(), 12);
    let eot_at = short.iter().position(|&id| id == eot).unwrap();
    assert!(eot_at >= 1, "{short:?}");
    assert!(short[eot_at + 1..].iter().all(|&id| id == pad), "{short:?}");
    assert!(short[..eot_at].iter().all(|&id| id != pad && id != eot));

    // Long: truncated so that end-of-text is still the last id.
    let long = "a photo of a dog on the beach next to a house under a tree at night ".repeat(10);
    let untruncated = tokenizer.encode(&long, 1000).unwrap();
    let n = untruncated.iter().position(|&id| id == pad).unwrap();
    assert!(n > 20);
    for t in [2, 5, 20] {
        let ids = tokenizer.encode(&long, t).unwrap();
        assert_eq!(ids.len(), t);
        assert_eq!(ids[t - 1], eot, "T = {t}: {ids:?}");
        assert_eq!(ids[..t - 1], untruncated[..t - 1], "a prefix of the text");
    }
    // Exactly fitting: no padding.
    let exact = tokenizer.encode(&long, n).unwrap();
    assert_eq!(exact, untruncated[..n]);
    // Smaller than the special tokens alone, and empty.
    assert_eq!(tokenizer.encode(&long, 1).unwrap(), [eot]);
    assert!(tokenizer.encode(&long, 0).unwrap().is_empty());
    assert_eq!(tokenizer.encode("", 3).unwrap(), [eot, pad, pad]);

    // A batch is its rows, row-major [n, T].
    let texts = ["a dog", long.as_str(), ""];
    let batch = tokenizer.encode_batch(&texts, 7).unwrap();
    assert_eq!(batch.len(), 3 * 7);
    for (row, text) in batch.chunks(7).zip(texts) {
        assert_eq!(row, tokenizer.encode(text, 7).unwrap());
    }
    assert!(batch
        .iter()
        .all(|&id| (id as usize) < tokenizer.vocab_size()));
}

#[test]
fn normalisation_folds_case_width_and_whitespace() {
    let tokenizer = trained(400);
    let plain = tokenizer.encode("a dog on the beach", 16).unwrap();
    for variant in [
        "A Dog on the BEACH",
        "  a\tdog\n on  the beach \n",
        "ａ ｄｏｇ on the beach",
    ] {
        assert_eq!(tokenizer.encode(variant, 16).unwrap(), plain, "{variant:?}");
    }
}

#[test]
fn special_token_text_in_a_caption_is_just_text() {
    let tokenizer = trained(400);
    let ids = tokenizer
        .encode(&format!("a dog {END_OF_TEXT} {PAD_TOKEN}"), 32)
        .unwrap();
    let eot_at = ids.iter().position(|&id| id == 1).unwrap();
    assert!(ids[eot_at + 1..].iter().all(|&id| id == 0), "{ids:?}");
    assert!(eot_at > 6, "the markers were spelt out in bytes: {ids:?}");
}

#[test]
fn unknown_bytes_never_fail() {
    let tokenizer = trained(300);
    let ids = tokenizer.encode("日本語のキャプション 🐕 ☃", 64).unwrap();
    assert_eq!(ids.len(), 64);
    assert!(ids.iter().all(|&id| (id as usize) < tokenizer.vocab_size()));
}

#[test]
fn a_vocabulary_smaller_than_the_byte_alphabet_is_refused() {
    let err = TextTokenizer::train_bpe(captions().into_iter(), 100, 2).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("258"), "{err}");
}

/// A BERT-style WordPiece tokenizer built with the `tokenizers` API: other model, pre-tokeniser,
/// two special tokens ([CLS] … [SEP]) and a pad token named in its `padding` section.
#[test]
fn a_wordpiece_tokenizer_from_elsewhere_loads_and_keeps_its_specials() {
    let tokens = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "dog", "on", "the", "beach", "##s",
    ];
    // An array of pairs: `vocab` takes what converts into the crate's own hash map.
    let vocab: [(String, u32); 10] = std::array::from_fn(|i| (tokens[i].to_owned(), i as u32));
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut bert = Tokenizer::new(model);
    bert.with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), 3),
            ("[CLS]".into(), 2),
        )))
        .with_padding(Some(PaddingParams {
            pad_id: 0,
            pad_token: "[PAD]".into(),
            ..PaddingParams::default()
        }));
    let dir = scratch("wordpiece");
    let path = dir.join("tokenizer.json");
    bert.save(&path, false).unwrap();

    let tokenizer = TextTokenizer::from_file(&path).unwrap();
    assert_eq!(tokenizer.pad_id(), 0);
    assert_eq!(tokenizer.vocab_size(), 10);
    assert_eq!(
        tokenizer.encode("a dogs on zebra", 8).unwrap(),
        [2, 4, 5, 9, 6, 1, 3, 0]
    );
    // Truncation makes room for [SEP].
    assert_eq!(
        tokenizer.encode("a dog on the beach", 4).unwrap(),
        [2, 4, 5, 3]
    );
    assert_eq!(tokenizer.encode("a dog", 1).unwrap(), [2]);
    // Its own tokens in a caption are text ([, SEP, ] are unknown words here).
    assert_eq!(tokenizer.encode("[SEP]", 5).unwrap(), [2, 1, 1, 1, 3]);
}

/// A hand-written WordLevel `tokenizer.json` with no pad token anywhere, and a file-level
/// truncation and fixed padding that must not leak into `encode`.
#[test]
fn a_tokenizer_without_pad_token_pads_with_zero_and_ignores_its_own_lengths() {
    let json = r#"{
      "version": "1.0",
      "truncation": {"direction": "Left", "max_length": 2, "strategy": "LongestFirst", "stride": 0},
      "padding": null,
      "added_tokens": [],
      "normalizer": {"type": "Lowercase"},
      "pre_tokenizer": {"type": "Whitespace"},
      "post_processor": null,
      "decoder": null,
      "model": {"type": "WordLevel", "vocab": {"hello": 0, "big": 1, "world": 2, "<unk>": 3}, "unk_token": "<unk>"}
    }"#;
    let dir = scratch("wordlevel");
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    let tokenizer = TextTokenizer::from_file(&path).unwrap();
    assert_eq!(tokenizer.pad_id(), 0, "no pad token: pad with id 0");
    assert_eq!(tokenizer.vocab_size(), 4);
    assert_eq!(
        tokenizer.encode("Hello big World moon", 6).unwrap(),
        [0, 1, 2, 3, 0, 0]
    );
    assert_eq!(tokenizer.encode("hello big world", 2).unwrap(), [0, 1]);

    // A fixed padding length in the file does not override T either.
    let fixed = json.replace(
        r#""padding": null"#,
        r#""padding": {"strategy": {"Fixed": 5}, "direction": "Left", "pad_to_multiple_of": 4, "pad_id": 3, "pad_type_id": 0, "pad_token": "<unk>"}"#,
    );
    std::fs::write(&path, fixed).unwrap();
    let tokenizer = TextTokenizer::from_file(&path).unwrap();
    assert_eq!(tokenizer.pad_id(), 3, "the file's padding names the pad id");
    assert_eq!(tokenizer.encode("world", 3).unwrap(), [2, 3, 3]);
}

#[test]
fn a_file_that_is_not_a_tokenizer_is_named_in_the_error() {
    let dir = scratch("bad-file");
    let path = dir.join("broken-tokenizer.json");
    for content in [
        "not json at all",
        r#"{"version": "1.0", "model": {"type": "Nope"}}"#,
    ] {
        std::fs::write(&path, content).unwrap();
        let err = TextTokenizer::from_file(&path).unwrap_err();
        assert!(matches!(err, Error::TokenizerFile { .. }), "{err}");
        assert!(err.to_string().contains("broken-tokenizer.json"), "{err}");
    }
    let missing = dir.join("missing.json");
    let err = TextTokenizer::from_file(&missing).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.json"), "{err}");
}

/// SentencePiece-style (T5): a Unigram model, Metaspace pre-tokeniser, `</s>` appended, and a
/// pad token found by its name alone.
#[test]
fn a_unigram_tokenizer_finds_its_pad_token_by_name() {
    let json = r#"{
      "version": "1.0", "truncation": null, "padding": null,
      "added_tokens": [
        {"id": 0, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        {"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
      ],
      "normalizer": null,
      "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true},
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}],
        "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
      "decoder": null,
      "model": {"type": "Unigram", "unk_id": 2, "byte_fallback": false, "vocab": [
        ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["\u2581a", -1.0], ["\u2581dog", -2.0],
        ["\u2581", -3.0], ["a", -4.0], ["d", -4.0], ["o", -4.0], ["g", -4.0]]}
    }"#;
    let dir = scratch("unigram");
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    let tokenizer = TextTokenizer::from_file(&path).unwrap();
    assert_eq!(tokenizer.pad_id(), 0, "<pad> by name");
    assert_eq!(tokenizer.vocab_size(), 10);
    assert_eq!(tokenizer.encode("a dog", 5).unwrap(), [3, 4, 1, 0, 0]);
    assert_eq!(tokenizer.encode("a dog a", 3).unwrap(), [3, 4, 1]);
}

/// Llama 3's split pattern (case-insensitive group, Unicode classes, digits in threes, a
/// lookahead) must compile in the pure-Rust regex engine this crate is built with.
#[test]
fn a_llama3_style_regex_pre_tokenizer_loads() {
    let pattern = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"hello": 0, " world": 1, "<unk>": 2, "123": 3, "4": 4, "'S": 5}, "unk_token": "<unk>"}
    })
    .to_string();
    let dir = scratch("llama3-regex");
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    let tokenizer = TextTokenizer::from_file(&path).unwrap();
    assert_eq!(
        tokenizer.encode("hello world1234'S", 6).unwrap(),
        [0, 1, 3, 4, 5, 0]
    );
}
