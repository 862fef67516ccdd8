//! Gzip-compressed shards (`.tar.gz`, `.tgz`, or gzip behind a `.tar` name), as WebDataset and
//! img2dataset can write them: listed, read, cut off and resumed like plain tars. Other
//! compressions are refused by name.
#[path = "support/shards.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jester_data::decode::{decode, DecodeOptions};
use jester_data::{expand_shards, Loader, LoaderCursor, RawSample, SkipReason};
use support::{good, gzipped, identity, options, workdir, write};

/// Each plain shard gzipped into `dir` under the name `name(index)`.
fn gzip_all(plain: &[PathBuf], dir: &Path, name: impl Fn(usize) -> String) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    plain
        .iter()
        .enumerate()
        .map(|(i, shard)| {
            let path = dir.join(name(i));
            std::fs::write(&path, gzipped(&std::fs::read(shard).unwrap())).unwrap();
            path
        })
        .collect()
}

fn read_all(shards: Vec<PathBuf>) -> Vec<RawSample> {
    Loader::new(shards, &options(false, 2, 1, 0), identity(), None)
        .unwrap()
        .map(|s| s.unwrap())
        .collect()
}

#[test]
fn gzip_shards_read_back_exactly_as_the_plain_tars() {
    let dir = workdir("gzip-roundtrip");
    let samples: Vec<RawSample> = (0..23).map(good).collect();
    let plain = write(&dir.join("plain"), samples.clone(), 7);
    let gz = gzip_all(&plain, &dir.join("gz"), |i| format!("{i:05}.tar.gz"));
    assert_eq!(read_all(plain), samples);
    assert_eq!(read_all(gz.clone()), samples);

    // A folder lists its .tar.gz shards; globs and brace ranges name them.
    let d = dir.join("gz").display().to_string();
    assert_eq!(expand_shards(&[&d]).unwrap(), gz);
    assert_eq!(expand_shards(&[format!("{d}/*.tar.gz")]).unwrap(), gz);
    assert_eq!(
        expand_shards(&[format!("{d}/{{00000..00003}}.tar.gz")]).unwrap(),
        gz
    );
}

#[test]
fn tgz_names_and_gzip_behind_a_tar_name_are_read_too() {
    let dir = workdir("gzip-names");
    let samples: Vec<RawSample> = (0..12).map(good).collect();
    let plain = write(&dir.join("plain"), samples.clone(), 4);
    let mixed = dir.join("mixed");
    // 00000.tgz, 00001.tar (gzip inside), 00002.tar.gz.
    let names = ["00000.tgz", "00001.tar", "00002.tar.gz"];
    let shards = gzip_all(&plain, &mixed, |i| names[i].into());
    assert_eq!(
        expand_shards(&[mixed.display().to_string()]).unwrap(),
        shards
    );
    assert_eq!(read_all(shards), samples);
}

#[test]
fn a_truncated_gzip_shard_keeps_what_came_before_the_break() {
    let dir = workdir("gzip-truncated");
    let plain = write(&dir.join("plain"), (0..10).map(good), 100);
    let gz = gzip_all(&plain, &dir.join("gz"), |_| "00000.tar.gz".into());
    let bytes = std::fs::read(&gz[0]).unwrap();
    std::fs::write(&gz[0], &bytes[..bytes.len() / 2]).unwrap();
    let mut loader = Loader::new(gz.clone(), &options(false, 2, 1, 0), identity(), None).unwrap();
    let got: Vec<RawSample> = loader.by_ref().map(|s| s.unwrap()).collect();
    assert!((1..10).contains(&got.len()), "kept {} samples", got.len());
    assert_eq!(
        got,
        (0..got.len()).map(good).collect::<Vec<_>>(),
        "the samples before the break, intact"
    );
    assert_eq!(loader.skipped().get(SkipReason::TruncatedShard), 1);

    // Cut inside the gzip header: nothing readable, an error naming the file and its format.
    std::fs::write(&gz[0], &bytes[..5]).unwrap();
    let results: Vec<_> = Loader::new(gz.clone(), &options(false, 2, 1, 0), identity(), None)
        .unwrap()
        .collect();
    assert_eq!(results.len(), 1);
    let err = results[0].as_ref().unwrap_err().to_string();
    let name = gz[0].display().to_string();
    assert!(err.contains(&name) && err.contains("gzip"), "{err}");

    // Cut inside the first member: an error as above, or a counted skip; never a panic.
    std::fs::write(&gz[0], &bytes[..40]).unwrap();
    let mut loader = Loader::new(gz.clone(), &options(false, 2, 1, 0), identity(), None).unwrap();
    match loader.next() {
        Some(Err(e)) => assert!(e.to_string().contains(&name), "{e}"),
        None => assert_eq!(loader.skipped().get(SkipReason::TruncatedShard), 1),
        Some(Ok(sample)) => panic!("read {:?} from 40 bytes", sample.key),
    }
}

#[test]
fn a_resumed_loader_over_gzip_shards_sees_what_an_uninterrupted_one_sees() {
    let dir = workdir("gzip-resume");
    let mut samples: Vec<RawSample> = (0..40).map(good).collect();
    samples[13].members.remove("txt"); // a skip inside the stream
    samples[13].members.remove("json");
    let plain = write(&dir.join("plain"), samples, 6);
    let shards = gzip_all(&plain, &dir.join("gz"), |i| format!("{i:05}.tar.gz"));
    let work: jester_data::loader::Work<String> =
        Arc::new(|raw: RawSample| decode(&raw, &DecodeOptions::default()).map(|d| d.key));
    let opts = options(true, 3, 2, 11);
    let whole: Vec<String> = Loader::new(shards.clone(), &opts, work.clone(), None)
        .unwrap()
        .map(|k| k.unwrap())
        .collect();
    assert_eq!(whole.len(), 78, "two epochs of 39 good samples");
    // 3 and 22 stop inside a shard of the first epoch, 57 inside one of the second.
    for stop in [3, 22, 39, 57] {
        let mut first = Loader::new(shards.clone(), &opts, work.clone(), None).unwrap();
        let head = first.next_batch(stop).unwrap();
        let cursor: LoaderCursor = first.cursor().clone();
        drop(first);
        let tail: Vec<String> = Loader::new(shards.clone(), &opts, work.clone(), Some(cursor))
            .unwrap()
            .map(|k| k.unwrap())
            .collect();
        assert_eq!([head, tail].concat(), whole, "resumed after {stop}");
    }
}

#[test]
fn other_compressions_are_refused_by_name_with_the_fix() {
    let dir = workdir("other-compressions");
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "00000.tar.zst",
            b"\x28\xb5\x2f\xfd\x04\x00 rest of a frame",
            "zstd",
        ),
        ("00001.tar.bz2", b"BZh91AY&SY rest of a block", "bzip2"),
        ("00002.tar.xz", b"\xfd7zXZ\x00 rest of a stream", "xz"),
    ];
    for (name, bytes, format) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let results: Vec<_> = Loader::new(
            vec![path.clone()],
            &options(false, 1, 1, 0),
            identity(),
            None,
        )
        .unwrap()
        .collect();
        let err = results[0].as_ref().unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains(format),
            "{err}"
        );
        assert!(err.contains("decompress"), "says how to fix it: {err}");
    }
}
