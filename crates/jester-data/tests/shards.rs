//! Shards end to end: write → read round trips, seeded order independent of threads, exact resume,
//! and every kind of broken file a web corpus has, each skipped and counted or refused by name.
#[path = "support/shards.rs"]
mod support;

use std::sync::Arc;

use jester_data::decode::{decode, DecodeOptions};
use jester_data::{expand_shards, Loader, LoaderCursor, RawSample, SkipReason};
use support::{encoded, good, identity, keys, options, workdir, write};

#[test]
fn written_shards_read_back_whole_and_in_order() {
    let dir = workdir("roundtrip");
    let samples: Vec<RawSample> = (0..23).map(good).collect();
    let shards = write(&dir, samples.clone(), 7);
    assert_eq!(shards.len(), 4, "23 samples at 7 per shard");
    assert_eq!(
        expand_shards(&[format!("{}/{{00000..00003}}.tar", dir.display())]).unwrap(),
        shards
    );
    let got: Vec<RawSample> = Loader::new(shards, &options(false, 3, 1, 0), identity(), None)
        .unwrap()
        .map(|s| s.unwrap())
        .collect();
    assert_eq!(got, samples);
}

#[test]
fn order_depends_on_the_seed_only_not_on_threads() {
    let dir = workdir("order");
    let shards = write(&dir, (0..60).map(good), 9);
    let run = |workers, seed| {
        keys(
            Loader::new(
                shards.clone(),
                &options(true, workers, 1, seed),
                identity(),
                None,
            )
            .unwrap(),
        )
    };
    let a = run(1, 5);
    assert_eq!(a, run(4, 5));
    assert_ne!(a, run(1, 6));
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..60).map(|i| format!("{i:06}")).collect::<Vec<_>>(),
        "every sample exactly once"
    );
    assert_ne!(a, sorted, "shuffled");
}

#[test]
fn a_resumed_loader_sees_exactly_what_an_uninterrupted_one_sees() {
    let dir = workdir("resume");
    let mut samples: Vec<RawSample> = (0..40).map(good).collect();
    samples[13].members.remove("txt"); // a skip inside the stream
    samples[13].members.remove("json");
    let shards = write(&dir, samples, 6);
    let work: jester_data::loader::Work<String> =
        Arc::new(|raw: RawSample| decode(&raw, &DecodeOptions::default()).map(|d| d.key));
    let opts = options(true, 3, 2, 11);
    let whole: Vec<String> = Loader::new(shards.clone(), &opts, work.clone(), None)
        .unwrap()
        .map(|k| k.unwrap())
        .collect();
    assert_eq!(whole.len(), 78, "two epochs of 39 good samples");
    for stop in [0, 1, 25, 39, 40, 57, 77] {
        let mut first = Loader::new(shards.clone(), &opts, work.clone(), None).unwrap();
        let head = first.next_batch(stop).unwrap();
        let cursor: LoaderCursor = first.cursor().clone();
        drop(first);
        let json = serde_json::to_string(&cursor).unwrap();
        let cursor: LoaderCursor = serde_json::from_str(&json).unwrap();
        let tail: Vec<String> = Loader::new(shards.clone(), &opts, work.clone(), Some(cursor))
            .unwrap()
            .map(|k| k.unwrap())
            .collect();
        assert_eq!([head, tail].concat(), whole, "resumed after {stop}");
    }
    let mut all = Loader::new(shards, &opts, work, None).unwrap();
    while all.next().is_some() {}
    assert_eq!(
        all.skipped().get(SkipReason::NoCaption),
        2,
        "once per epoch"
    );
}

#[test]
fn broken_samples_are_skipped_and_counted_by_reason() {
    let dir = workdir("broken");
    let mut jpeg = encoded(16, 16, image::ImageFormat::Jpeg, 1);
    // Declare 20,000 × 20,000 in the JPEG frame header (SOF0): refused before any allocation.
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline JPEG");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0x4E, 0x20, 0x4E, 0x20]);
    let samples = vec![
        good(0),
        RawSample::new("corrupt")
            .with("jpg", b"\xFF\xD8\xFF not really a jpeg".to_vec())
            .with("txt", "x"),
        RawSample::new("empty")
            .with("png", Vec::new())
            .with("txt", "x"),
        RawSample::new("huge")
            .with("jpg", jpeg)
            .with("txt", "a very large image"),
        RawSample::new("nocaption").with("png", encoded(4, 4, image::ImageFormat::Png, 2)),
        RawSample::new("blank")
            .with("png", encoded(4, 4, image::ImageFormat::Png, 3))
            .with("txt", "  \n"),
        RawSample::new("latin1")
            .with("png", encoded(4, 4, image::ImageFormat::Png, 4))
            .with("txt", b"caf\xe9".to_vec()),
        RawSample::new("noimage").with("txt", "words without a picture"),
        RawSample::new("longcaption")
            .with("png", encoded(4, 4, image::ImageFormat::Png, 7))
            .with("txt", "a scraped page ".repeat(2000)),
        RawSample::new("jsoncaption")
            .with("webp", encoded(4, 4, image::ImageFormat::WebP, 5))
            .with("json", "{\"caption\": \"from json\"}"),
        RawSample::new("svg")
            .with("svg", r##"<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><rect x="10" width="10" height="10" fill="#ff0000"/></svg>"##)
            .with("txt", "a red square on the right"),
        RawSample::new("badsvg").with("svg", "<svg oops").with("txt", "broken vector"),
        RawSample::new("badjson")
            .with("png", encoded(4, 4, image::ImageFormat::Png, 6))
            .with("json", "{not json"),
        good(1),
    ];
    let shards = write(&dir, samples, 100);
    let work: jester_data::loader::Work<(String, String)> = Arc::new(|raw: RawSample| {
        decode(&raw, &DecodeOptions::default()).map(|d| (d.key, d.caption))
    });
    let start = std::time::Instant::now();
    let mut loader = Loader::new(shards, &options(false, 2, 1, 0), work, None).unwrap();
    let got: Vec<(String, String)> = loader.by_ref().map(|s| s.unwrap()).collect();
    assert!(
        start.elapsed().as_secs() < 30,
        "the 20k × 20k image must not be decoded"
    );
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["000000", "jsoncaption", "svg", "000001"]);
    assert_eq!(got[1].1, "from json");
    let s = loader.skipped();
    assert_eq!(
        s.get(SkipReason::UndecodableImage),
        2,
        "a corrupt jpeg and a broken svg: {s}"
    );
    for reason in [
        SkipReason::EmptyImage,
        SkipReason::ImageTooLarge,
        SkipReason::NoCaption,
        SkipReason::EmptyCaption,
        SkipReason::NonUtf8Caption,
        SkipReason::NoImage,
        SkipReason::BadJson,
        SkipReason::CaptionTooLong,
    ] {
        assert_eq!(s.get(reason), 1, "{reason:?} in {s}");
    }
    assert_eq!(s.total(), 10);
    assert!(s.to_string().starts_with("10 skipped: "), "{s}");
    assert!(s.to_string().contains("1 caption-too-long"), "{s}");
}

#[test]
fn a_truncated_shard_keeps_what_came_before_the_break() {
    let dir = workdir("truncated");
    let shards = write(&dir, (0..10).map(good), 100);
    let bytes = std::fs::read(&shards[0]).unwrap();
    // Cut in the middle of the archive, inside some member.
    std::fs::write(&shards[0], &bytes[..bytes.len() / 2 + 100]).unwrap();
    let mut loader = Loader::new(shards, &options(false, 2, 1, 0), identity(), None).unwrap();
    let got: Vec<RawSample> = loader.by_ref().map(|s| s.unwrap()).collect();
    assert!((3..10).contains(&got.len()), "kept {} samples", got.len());
    assert_eq!(
        got,
        (0..got.len()).map(good).collect::<Vec<_>>(),
        "the samples before the break, intact"
    );
    assert_eq!(loader.skipped().get(SkipReason::TruncatedShard), 1);
}

#[test]
fn a_file_that_is_not_a_tar_is_an_error_naming_it() {
    let dir = workdir("nottar");
    let shards = write(&dir, (0..3).map(good), 100);
    let junk = dir.join("00001.tar");
    // Deterministic "random" bytes.
    let bytes: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&junk, bytes).unwrap();
    let empty = dir.join("00002.tar");
    std::fs::write(&empty, b"").unwrap();
    for bad in [&junk, &empty] {
        let mut loader = Loader::new(
            vec![shards[0].clone(), bad.clone()],
            &options(false, 2, 1, 0),
            identity(),
            None,
        )
        .unwrap();
        let results: Vec<_> = loader.by_ref().collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        let err = results.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(
            err.contains(&bad.display().to_string()) && err.contains("not a tar"),
            "{err}"
        );
        // The reason in words: none of the junk's bytes are quoted back.
        assert!(
            err.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "{err:?}"
        );
    }
}

#[test]
fn a_repeated_key_is_skipped_and_counted_and_its_first_copy_is_used() {
    // Key 000003 twice in one shard and once more in the next: one sample is kept, the one
    // read first, and the other two are counted as duplicate-key.
    let dir = workdir("duplicate-keys");
    let mut samples: Vec<RawSample> = (0..8).map(good).collect();
    let copy = |caption: &str| {
        RawSample::new("000003")
            .with("png", encoded(8, 6, image::ImageFormat::Png, 9))
            .with("txt", caption.to_string())
    };
    samples.insert(5, copy("the second copy"));
    samples.push(copy("the third copy"));
    let shards = write(&dir, samples, 6);
    assert_eq!(shards.len(), 2);
    let mut loader = Loader::new(shards, &options(false, 2, 1, 0), identity(), None).unwrap();
    let got: Vec<RawSample> = loader.by_ref().map(|s| s.unwrap()).collect();
    let threes: Vec<&RawSample> = got.iter().filter(|s| s.key == "000003").collect();
    assert_eq!(threes.len(), 1);
    assert_eq!(threes[0].member("txt").unwrap(), b"caption number 3");
    assert_eq!(got.len(), 8);
    assert_eq!(loader.skipped().get(SkipReason::DuplicateKey), 2);
}

#[test]
fn a_json_member_over_the_limit_is_skipped_before_it_is_parsed() {
    let options = DecodeOptions {
        max_json_bytes: 64,
        ..DecodeOptions::default()
    };
    // Over the limit and not even JSON: refused for its size, so it was never parsed.
    let big = good(1).with("json", vec![b'{'; 65]);
    assert_eq!(
        decode(&big, &options).unwrap_err(),
        SkipReason::JsonTooLarge
    );
    let caption_only = RawSample::new("x").with("json", vec![b'['; 65]);
    assert_eq!(
        jester_data::decode::caption(&caption_only, &options).unwrap_err(),
        SkipReason::JsonTooLarge
    );
    // At the limit it is parsed as before.
    let small = good(1).with("json", format!("{{\"pad\": \"{}\"}}", "x".repeat(53)));
    assert_eq!(small.member("json").unwrap().len(), 64);
    assert!(decode(&small, &options).is_ok());
}

#[test]
fn a_panicking_work_function_is_an_error_not_a_hang() {
    let dir = workdir("panic");
    let shards = write(&dir, (0..20).map(good), 100);
    let work: jester_data::loader::Work<String> = Arc::new(|raw: RawSample| {
        assert_ne!(raw.key, "000007", "a bug in the work function");
        Ok(raw.key)
    });
    let results: Vec<_> = Loader::new(shards, &options(false, 2, 1, 0), work, None)
        .unwrap()
        .collect();
    assert_eq!(results.iter().take_while(|r| r.is_ok()).count(), 7);
    let err = results.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(err.contains("000007") && err.contains("panicked"), "{err}");
}
