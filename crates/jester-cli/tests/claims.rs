//! Who owns a run folder: two starts into one new folder leave exactly one run, the other refused
//! naming the holder and changing nothing; a fresh start that fails before its first step leaves
//! nothing it wrote (so the corrected command just works), and says why in words.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{fails, fixture, s, SMALL};
use jester_data::{RawSample, ShardWriter};

fn root(name: &str) -> PathBuf {
    let dir = fixture().root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A shard whose every sample is unusable: 50 captions without an image, 50 images without a
/// caption.
fn unusable_shard(dir: &Path) -> PathBuf {
    let mut image = Vec::new();
    jester_data::image::RgbImage::new(8, 8)
        .write_to(
            &mut std::io::Cursor::new(&mut image),
            jester_data::image::ImageFormat::Png,
        )
        .unwrap();
    let mut writer = ShardWriter::new(dir, 1000).unwrap();
    for i in 0..100 {
        let sample = RawSample::new(format!("{i:04}"));
        let sample = if i % 2 == 0 {
            sample.with("txt", "a red cube")
        } else {
            sample.with("png", image.clone())
        };
        writer.write(&sample).unwrap();
    }
    writer.finish().unwrap();
    dir.to_owned()
}

#[test]
fn a_start_that_fails_before_its_first_step_leaves_nothing_and_says_why_in_words() {
    let dir = root("unusable");
    let shards = unusable_shard(&dir.join("shards"));
    let tokenizer = fixture().reference.join("tokenizer.json");
    let out = dir.join("run");
    let mut args = vec![
        "train",
        "--data",
        s(&shards),
        "--out",
        s(&out),
        "--steps",
        "2",
        "--batch",
        "16",
        "--set",
    ];
    let setting = format!("data.tokenizer={}", s(&tokenizer));
    args.push(&setting);
    let err = fails(&args, &[]);
    assert!(
        err.contains("no usable sample") && err.contains("50 no-image, 50 no-caption"),
        "{err}"
    );
    assert!(!err.contains("SkipCounts"), "{err}");
    assert!(
        !out.exists(),
        "a failed fresh start leaves no folder: {err}"
    );
    // Into a folder the user made, holding a file of theirs: only that file is left.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    fails(&args, &[]);
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes.txt"], "only the user's file is left");
}

#[test]
fn two_starts_into_one_new_folder_leave_one_run_and_one_refusal_naming_it() {
    let f = fixture();
    let pool = f.bench.join("pool");
    for attempt in 0..3 {
        let out = root(&format!("race-{attempt}"));
        let mut args = vec![
            "train".to_string(),
            "--data".into(),
            s(&pool).into(),
            "--out".into(),
            s(&out).into(),
            "--steps".into(),
            "2".into(),
            "--batch".into(),
            "16".into(),
        ];
        args.extend(SMALL.iter().map(|a| a.to_string()));
        let start = || {
            Command::new(env!("CARGO_BIN_EXE_jester"))
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (start(), start());
        let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let won: Vec<_> = outputs.iter().filter(|o| o.status.success()).collect();
        let lost: Vec<String> = outputs
            .iter()
            .filter(|o| !o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect();
        assert_eq!(won.len(), 1, "attempt {attempt}: {lost:?}");
        let refusal = &lost[0];
        // Refused for the lock (the other start holds the folder), or after it finished.
        assert!(
            (refusal.contains("is in use by another process")
                && refusal.contains("pid ")
                && !refusal.contains("pid unknown"))
                || refusal.contains("already holds a run"),
            "attempt {attempt}: {refusal}"
        );
        assert!(
            out.join("model.safetensors").exists() && out.join("summary.json").exists(),
            "attempt {attempt}: the winner's run is intact"
        );
    }
}

#[test]
fn a_repeated_key_is_counted_by_inspect_and_embedded_once() {
    let dir = root("duplicate-key");
    let pool = fixture().bench.join("pool");
    // The pool's first shard, then the same shard again under another name: every key twice.
    let first = std::fs::read_dir(&pool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .min()
        .unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&first, dir.join("a.tar")).unwrap();
    std::fs::copy(&first, dir.join("b.tar")).unwrap();
    let inspected = common::jester_with(&["shards", "inspect", s(&dir)], &[]);
    let inspected = String::from_utf8_lossy(&inspected.stdout).into_owned()
        + &String::from_utf8_lossy(&inspected.stderr);
    let cache = dir.join("cache.safetensors");
    let out = common::jester_with(&common::embed_args(&fixture().reference, &dir, &cache), &[]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    let n = jester::cache::EmbeddingCache::read(&cache).unwrap().len();
    assert!(n > 0, "{said}");
    assert!(
        inspected.contains(&format!("{n} skipped: {n} duplicate-key")),
        "inspect: {inspected}"
    );
    assert!(said.contains(&format!("{n} duplicate-key")), "{said}");
    assert!(said.contains("the copy read first is embedded"), "{said}");
}
