//! Multi-megabyte captions (issue 15: one 10 MB caption hung `jester train`): refused at decode
//! by their length, and if they reach the tokenizer anyway, trained on and encoded in time linear
//! in what can matter, with the same ids as encoding the whole text.
use std::path::PathBuf;

use jester_data::decode::{caption, decode, DecodeOptions};
use jester_data::tokenizer::{TextTokenizer, END_OF_TEXT};
use jester_data::{RawSample, SkipReason};
use tokenizers::Tokenizer;

const MB: usize = 1 << 20;

fn png() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(4, 4)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// 10 MB of one letter: a single "word" for every pre-tokeniser.
fn one_word() -> String {
    "a".repeat(10 * MB)
}

/// 10 MB of ordinary words.
fn many_words() -> String {
    let sentence = "a photo of a dog on the beach next to an old house at night ";
    sentence.repeat(10 * MB / sentence.len())
}

fn short_captions() -> Vec<String> {
    let subjects = ["a dog", "a cat", "two birds", "the red car", "an old man"];
    let places = ["on the beach", "in a park", "under a tree", "at night"];
    subjects
        .iter()
        .flat_map(|s| places.iter().map(move |p| format!("A photo of {s} {p}.")))
        .collect()
}

#[test]
fn a_caption_over_the_limit_is_skipped_before_it_is_read() {
    let options = DecodeOptions::default();
    assert_eq!(options.max_caption_bytes, 16 << 10);
    let with_txt = |txt: Vec<u8>| RawSample::new("k").with("png", png()).with("txt", txt);
    let over = SkipReason::CaptionTooLong;
    assert_eq!(
        decode(&with_txt(one_word().into_bytes()), &options).unwrap_err(),
        over
    );
    // The length is checked before UTF-8: 10 MB of Latin-1 is too long, not non-UTF-8.
    assert_eq!(caption(&with_txt(vec![0xE9; 10 * MB]), &options), Err(over));

    // From the `.json` caption field too: a caption over the limit in a `.json` under its own
    // limit (1 MiB) is too long; a `.json` over that limit is refused unparsed, whatever its
    // caption; a `.json` under it with a short caption and a long other field is fine.
    let json = |caption: &str, other: &str| {
        RawSample::new("k").with("png", png()).with(
            "json",
            serde_json::json!({"caption": caption, "page": other}).to_string(),
        )
    };
    let page = &many_words()[..MB / 2];
    assert_eq!(caption(&json(&page[..64 << 10], ""), &options), Err(over));
    assert_eq!(
        caption(&json(&many_words(), ""), &options),
        Err(SkipReason::JsonTooLarge)
    );
    assert_eq!(
        caption(&json(" a dog ", &many_words()), &options),
        Err(SkipReason::JsonTooLarge)
    );
    assert_eq!(caption(&json(" a dog ", page), &options).unwrap(), "a dog");

    // The limit is on raw bytes, inclusive.
    let small = DecodeOptions {
        max_caption_bytes: 10,
        ..DecodeOptions::default()
    };
    assert_eq!(
        caption(&with_txt(b"0123456789".to_vec()), &small).unwrap(),
        "0123456789"
    );
    assert_eq!(
        caption(&with_txt(b"0123456789 ".to_vec()), &small),
        Err(over)
    );
    assert_eq!(over.name(), "caption-too-long");
    assert_eq!(
        serde_json::to_string(&over).unwrap(),
        "\"caption-too-long\""
    );
}

#[test]
fn the_caption_limit_is_a_config_setting_left_out_at_its_default() {
    let default = serde_json::to_value(DecodeOptions::default()).unwrap();
    assert!(default.get("max_caption_bytes").is_none(), "{default}");
    assert!(default.get("max_json_bytes").is_none(), "{default}");
    let old: DecodeOptions = serde_json::from_value(default).unwrap();
    assert_eq!(old, DecodeOptions::default());
    let set: DecodeOptions = serde_json::from_str(r#"{"max_caption_bytes": 1000}"#).unwrap();
    assert_eq!(set.max_caption_bytes, 1000);
    let again: DecodeOptions = serde_json::from_value(serde_json::to_value(&set).unwrap()).unwrap();
    assert_eq!(again, set);
}

/// Trained on short captions plus long runs of one letter (twice, so their merges count), so
/// that single tokens span many bytes and a short prefix is not always enough.
fn trained_with_long_tokens() -> (TextTokenizer, Tokenizer) {
    let mut captions = short_captions();
    captions.extend(["a".repeat(1000), "a".repeat(1000), "z".repeat(300)]);
    let tokenizer = TextTokenizer::train_bpe(captions.into_iter(), 400, 2).unwrap();
    let path = std::env::temp_dir().join(format!(
        "jester-long-captions-{}-tokenizer.json",
        std::process::id()
    ));
    tokenizer.save(&path).unwrap();
    let raw = Tokenizer::from_file(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    (tokenizer, raw)
}

/// The raw tokenizer's ids for all of `text`: no prefix taken, no truncation, no special tokens.
fn whole(raw: &Tokenizer, text: &str) -> Vec<u32> {
    raw.encode_fast(text, false).unwrap().get_ids().to_vec()
}

/// What `encode` must give from the ids of the whole text: the first T − 1, end-of-text
/// appended, padded to T.
fn reference(raw: &Tokenizer, whole: &[u32], t: usize) -> Vec<u32> {
    let eot = raw.token_to_id(END_OF_TEXT).unwrap();
    let mut ids = whole[..whole.len().min(t.saturating_sub(1))].to_vec();
    ids.push(eot);
    ids.truncate(t);
    ids.resize(t, 0);
    ids
}

#[test]
fn training_on_multi_megabyte_captions_finishes() {
    // Before the fix the BPE trainer's merges were quadratic in the length of a word: 10 MB of
    // one letter never finished.
    let mut captions = short_captions();
    captions.extend([one_word(), many_words(), format!("{} x", " ".repeat(MB))]);
    let tokenizer = TextTokenizer::train_bpe(captions.into_iter(), 400, 2).unwrap();
    assert!(tokenizer.vocab_size() > 258);
    let ids = tokenizer.encode(&one_word(), 77).unwrap();
    assert_eq!(ids.len(), 77);
}

#[test]
fn a_long_text_encodes_as_the_whole_text_would() {
    let (tokenizer, raw) = trained_with_long_tokens();
    let whitespace_first = format!(
        "{}{}",
        " \n\t".repeat(MB / 8),
        "a dog on the beach ".repeat(1000)
    );
    let no_spaces = "日本語のキャプション🐕,".repeat(MB / 4);
    let texts = [one_word(), many_words(), whitespace_first, no_spaces];
    for text in &texts {
        // The reference is the first megabyte encoded whole: more than any T below can use.
        let mut end = MB.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let all = whole(&raw, &text[..end]);
        for t in [1, 2, 8, 77, 300] {
            let (ids, length) = tokenizer.encode_with_length(text, t).unwrap();
            assert_eq!(
                ids,
                reference(&raw, &all, t),
                "T = {t}, text {:?}…",
                &text[..12]
            );
            assert_eq!(length, t, "a long text fills T");
        }
    }
    // Ordinary captions are encoded whole, as before.
    for text in short_captions() {
        for t in [1, 4, 77] {
            let want = reference(&raw, &whole(&raw, &text), t);
            assert_eq!(tokenizer.encode(&text, t).unwrap(), want);
        }
    }
}

#[test]
fn an_encoding_error_does_not_quote_a_whole_long_caption() {
    // WordLevel whose unknown token is missing from its vocabulary: every unknown word fails.
    let json = r#"{
      "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
      "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
      "decoder": null,
      "model": {"type": "WordLevel", "vocab": {"hello": 0}, "unk_token": "<unk>"}
    }"#;
    let path: PathBuf = std::env::temp_dir().join(format!(
        "jester-long-captions-{}-wordlevel.json",
        std::process::id()
    ));
    std::fs::write(&path, json).unwrap();
    let tokenizer = TextTokenizer::from_file(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let err = tokenizer.encode(&many_words(), 16).unwrap_err().to_string();
    assert!(err.contains("a photo of"), "{err}");
    assert!(err.len() < 1000, "{} bytes of error", err.len());
}
