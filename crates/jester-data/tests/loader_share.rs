//! Loader shares (data-parallel training): the shares of one corpus are disjoint, cover it, are
//! deterministic, and resume exactly from their own cursors — by shard and by sample.
#[path = "support/shards.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use jester_data::{Loader, RawSample, Share};
use support::{good, identity, keys, options, workdir, write};

fn share_keys(shards: &[PathBuf], share: Share, seed: u64) -> Vec<String> {
    let loader = Loader::new_share(
        shards.to_vec(),
        &options(true, 2, 1, seed),
        identity(),
        None,
        share,
    );
    keys(loader.unwrap())
}

fn check_partition(shards: &[PathBuf], count: usize, total: usize) {
    let mut all = BTreeSet::new();
    let mut sizes = Vec::new();
    for index in 0..count {
        let share = Share::new(index, count).unwrap();
        let mine = share_keys(shards, share, 7);
        assert_eq!(
            mine,
            share_keys(shards, share, 7),
            "share {index}: deterministic"
        );
        sizes.push(mine.len());
        for key in mine {
            assert!(all.insert(key.clone()), "{key} read by two shares");
        }
    }
    assert_eq!(all.len(), total, "the shares cover the corpus ({sizes:?})");
}

#[test]
fn shares_by_shard_and_by_sample_partition_the_corpus() {
    let dir = workdir("share-partition");
    let shards = write(&dir, (0..60).map(good), 10); // 6 shards
    check_partition(&shards, 1, 60);
    check_partition(&shards, 2, 60); // by shard: 3 files each
    check_partition(&shards, 3, 60); // by shard: 2 files each
    check_partition(&shards, 4, 60); // 6 files do not deal out evenly to 4: by sample
    check_partition(&shards, 8, 60); // fewer shards than shares: by sample
                                     // The whole corpus as one share is the plain loader.
    let plain =
        keys(Loader::new(shards.clone(), &options(true, 2, 1, 7), identity(), None).unwrap());
    assert_eq!(share_keys(&shards, Share::WHOLE, 7), plain);
    // By sample, shares are as even as the stream allows.
    for count in [4, 8] {
        let sizes: Vec<usize> = (0..count)
            .map(|i| share_keys(&shards, Share::new(i, count).unwrap(), 7).len())
            .collect();
        let (low, high) = (60 / count, 60_usize.div_ceil(count));
        assert!(sizes.iter().all(|&n| n == low || n == high), "{sizes:?}");
    }
}

#[test]
fn an_endless_share_with_no_usable_sample_is_an_error_not_a_hang() {
    let dir = workdir("share-empty");
    let mut samples: Vec<RawSample> = (0..4).map(good).collect();
    for s in &mut samples[..2] {
        s.members.remove("png"); // shard 0 holds only samples without an image
    }
    let shards = write(&dir, samples, 2);
    let work: jester_data::loader::Work<RawSample> = std::sync::Arc::new(|raw: RawSample| {
        if raw.members.contains_key("png") {
            Ok(raw)
        } else {
            Err(jester_data::SkipReason::NoImage)
        }
    });
    let mut opts = options(true, 1, 1, 0);
    opts.epochs = None;
    let mut loader = Loader::new_share(
        shards.clone(),
        &opts,
        work.clone(),
        None,
        Share::new(0, 2).unwrap(),
    )
    .unwrap();
    let err = loader.next_batch(4).unwrap_err().to_string();
    assert!(
        err.contains("share 0 of 2") && err.contains("no usable sample"),
        "{err}"
    );
    // The other share has samples and repeats forever.
    let mut other =
        Loader::new_share(shards, &opts, work, None, Share::new(1, 2).unwrap()).unwrap();
    assert_eq!(other.next_batch(5).unwrap().len(), 5);
}

#[test]
fn a_share_resumes_from_its_own_cursor() {
    let dir = workdir("share-resume");
    let mut samples: Vec<RawSample> = (0..40).map(good).collect();
    samples[9].members.remove("png"); // a skipped sample inside the stream
    let shards = write(&dir, samples, 8); // 5 shards
    for (share, stop) in [
        (Share::new(1, 2).unwrap(), 7),
        (Share::new(2, 8).unwrap(), 3),
    ] {
        let opts = options(true, 2, 2, 3);
        let open =
            |cursor| Loader::new_share(shards.clone(), &opts, identity(), cursor, share).unwrap();
        let whole = keys(open(None));
        let mut first = open(None);
        let head: Vec<String> = first
            .next_batch(stop)
            .unwrap()
            .into_iter()
            .map(|s| s.key)
            .collect();
        let cursor = first.cursor().clone();
        drop(first);
        let tail = keys(open(Some(cursor)));
        assert_eq!(
            [head, tail].concat(),
            whole,
            "{share:?} resumed after {stop}"
        );
    }
}
