//! The streaming loader: shards → samples in a seeded order → decoded and preprocessed on worker
//! threads → handed out in that same order, with memory bounded however large the corpus.
//!
//! ```text
//! reader thread: shards in a per-epoch seeded order → shuffle buffer → numbered raw samples
//!   → workers (decode + transform, in parallel) → reordering by number → next()
//! ```
//! The order depends only on the seed and the shards, never on thread timing. That makes the
//! cursor simple and exact: (epoch, how many numbered items were handed out). Resuming replays the
//! reader up to that point without decoding anything, so a restarted run sees exactly the samples
//! it would have seen. Shards are read one at a time; at most `shuffle_buffer` raw samples wait in
//! the buffer and at most `prefetch` are between the reader and the consumer.
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::sample::RawSample;
use crate::shard_reader::{read_shard, ShardItem};
use crate::share::Share;
use crate::skip::{SkipCounts, SkipReason};

/// How a loader reads its shards.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderOptions {
    /// Shuffle shard order each epoch and samples through the buffer. Off: files in the given order.
    pub shuffle: bool,
    /// Raw samples held for shuffling (0 or 1: no sample shuffling).
    pub shuffle_buffer: usize,
    /// Decoding threads.
    pub workers: usize,
    /// Samples in flight between the reader and the consumer.
    pub prefetch: usize,
    /// Passes over the shards; `None`: forever (training draws as many as it needs).
    pub epochs: Option<u64>,
    pub seed: u64,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        Self {
            shuffle: true,
            shuffle_buffer: 2048,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            prefetch: 1024,
            epochs: None,
            seed: 0,
        }
    }
}

/// Where a loader stands: enough to resume it exactly. Saved in checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoaderCursor {
    pub epoch: u64,
    /// Items of this epoch's stream handed out (samples and skips).
    pub position: u64,
    /// Samples handed out since the start, all epochs.
    pub samples: u64,
    pub skipped: SkipCounts,
}

/// What a worker makes of a raw sample: a value, or a reason to skip it.
pub type Work<T> = Arc<dyn Fn(RawSample) -> std::result::Result<T, SkipReason> + Send + Sync>;

enum Item {
    Raw(RawSample),
    Skip(SkipReason),
    /// A whole epoch ended (its last item was numbered before this).
    EndOfEpoch,
    Fatal(Error),
}

enum Done<T> {
    Value(T),
    Skip(SkipReason),
    EndOfEpoch,
    Fatal(Error),
}

/// The loader; iterate it for `Result<T>` in order. Errors are fatal (a file that is not a tar).
pub struct Loader<T: Send + 'static> {
    output: Receiver<(u64, Done<T>)>,
    tokens: Sender<()>,
    pending: BTreeMap<u64, Done<T>>,
    next: u64,
    cursor: LoaderCursor,
    threads: Vec<JoinHandle<()>>,
    finished: bool,
    /// Values handed out in the current epoch, and whether the loader repeats forever.
    epoch_values: u64,
    endless: bool,
    share: Share,
}

impl<T: Send + 'static> Loader<T> {
    /// Starts reading `shards` from `cursor` (default: the beginning), making each sample into a `T`
    /// with `work` on `options.workers` threads.
    pub fn new(
        shards: Vec<PathBuf>,
        options: &LoaderOptions,
        work: Work<T>,
        cursor: Option<LoaderCursor>,
    ) -> Result<Self> {
        Self::new_share(shards, options, work, cursor, Share::WHOLE)
    }

    /// [`new`](Self::new) reading only `share` of the shards ([`Share`]); the shares of one corpus
    /// with one seed are disjoint and cover it.
    pub fn new_share(
        shards: Vec<PathBuf>,
        options: &LoaderOptions,
        work: Work<T>,
        cursor: Option<LoaderCursor>,
        share: Share,
    ) -> Result<Self> {
        if shards.is_empty() {
            return Err(Error::Config {
                what: "loader",
                why: "no shards to read".into(),
            });
        }
        let cursor = cursor.unwrap_or_default();
        let prefetch = options.prefetch.max(1);
        let (raw_tx, raw_rx) = bounded::<(u64, Item)>(prefetch);
        let (out_tx, out_rx) = bounded::<(u64, Done<T>)>(prefetch);
        // One token per item between the reader and the consumer bounds the reordering window.
        let (token_tx, token_rx) = bounded::<()>(prefetch);
        for _ in 0..prefetch {
            token_tx.send(()).expect("capacity");
        }
        let mut threads = Vec::new();
        let by_shard = share.by_shard(shards.len());
        let reader = Reader {
            shards: share.shards(shards),
            share,
            by_shard,
            options: options.clone(),
            start: cursor.clone(),
        };
        threads.push(std::thread::spawn(move || reader.run(raw_tx, token_rx)));
        for _ in 0..options.workers.max(1) {
            let (rx, tx, work) = (raw_rx.clone(), out_tx.clone(), work.clone());
            threads.push(std::thread::spawn(move || {
                for (n, item) in rx {
                    let done = match item {
                        Item::Raw(raw) => {
                            let key = raw.key.clone();
                            // A panic must reach the consumer as an error: a worker that died
                            // silently would leave its item missing and `next` waiting forever.
                            let run = std::panic::AssertUnwindSafe(|| work(raw));
                            match std::panic::catch_unwind(run) {
                                Ok(Ok(v)) => Done::Value(v),
                                Ok(Err(reason)) => Done::Skip(reason),
                                Err(_) => Done::Fatal(Error::WorkerPanicked { key }),
                            }
                        }
                        Item::Skip(reason) => Done::Skip(reason),
                        Item::EndOfEpoch => Done::EndOfEpoch,
                        Item::Fatal(e) => Done::Fatal(e),
                    };
                    if tx.send((n, done)).is_err() {
                        return;
                    }
                }
            }));
        }
        Ok(Self {
            output: out_rx,
            tokens: token_tx,
            pending: BTreeMap::new(),
            next: 0,
            // Resuming inside an epoch: its earlier values were handed out before.
            epoch_values: cursor.position,
            cursor,
            threads,
            finished: false,
            endless: options.epochs.is_none(),
            share,
        })
    }

    /// Where the loader stands after the items handed out so far.
    pub fn cursor(&self) -> &LoaderCursor {
        &self.cursor
    }

    /// Skipped samples so far, by reason.
    pub fn skipped(&self) -> &SkipCounts {
        &self.cursor.skipped
    }

    /// Up to `n` values (fewer only at the end of the data).
    pub fn next_batch(&mut self, n: usize) -> Result<Vec<T>> {
        let mut batch = Vec::with_capacity(n);
        while batch.len() < n {
            match self.next() {
                Some(Ok(v)) => batch.push(v),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(batch)
    }

    /// The next item in stream order, whatever thread finished it.
    fn next_in_order(&mut self) -> Option<Done<T>> {
        loop {
            if let Some(done) = self.pending.remove(&self.next) {
                self.next += 1;
                let _ = self.tokens.send(());
                return Some(done);
            }
            match self.output.recv() {
                Ok((n, done)) => {
                    self.pending.insert(n, done);
                }
                Err(_) => return None,
            }
        }
    }
}

impl<T: Send + 'static> Iterator for Loader<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.finished {
            return None;
        }
        loop {
            match self.next_in_order() {
                Some(Done::Value(v)) => {
                    self.cursor.position += 1;
                    self.cursor.samples += 1;
                    self.epoch_values += 1;
                    return Some(Ok(v));
                }
                Some(Done::Skip(reason)) => {
                    self.cursor.position += 1;
                    self.cursor.skipped.add(reason);
                }
                Some(Done::EndOfEpoch) => {
                    if self.endless && self.epoch_values == 0 {
                        // Repeating an epoch with nothing usable would never return.
                        self.finished = true;
                        let share = self.share;
                        return Some(Err(Error::Config {
                            what: "loader",
                            why: if share.count > 1 {
                                format!(
                                    "share {} of {} of the shards has no usable sample (all \
                                     skipped: {}); use more shards or fewer processes",
                                    share.index, share.count, self.cursor.skipped
                                )
                            } else {
                                format!(
                                    "the shards have no usable sample (all skipped: {})",
                                    self.cursor.skipped
                                )
                            },
                        }));
                    }
                    self.cursor.epoch += 1;
                    self.cursor.position = 0;
                    self.epoch_values = 0;
                }
                Some(Done::Fatal(e)) => {
                    self.finished = true;
                    return Some(Err(e));
                }
                None => {
                    self.finished = true;
                    return None;
                }
            }
        }
    }
}

impl<T: Send + 'static> Drop for Loader<T> {
    fn drop(&mut self) {
        // Closing our ends of the channels lets every thread see them closed and return.
        let (_, dead) = bounded(0);
        self.output = dead;
        let (orphan, _) = bounded(0);
        self.tokens = orphan;
        self.pending.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A 64-bit hash of a sample key (FNV-1a): the epoch's key set holds these, not the strings.
fn key_hash(key: &str) -> u64 {
    crate::tools::inspect::fnv1a(key.as_bytes())
}

struct Reader {
    shards: Vec<PathBuf>,
    share: Share,
    /// Whether the share owns whole shards (else it keeps every `count`-th item it reads).
    by_shard: bool,
    options: LoaderOptions,
    start: LoaderCursor,
}

impl Reader {
    fn run(self, tx: Sender<(u64, Item)>, tokens: Receiver<()>) {
        let mut number = 0u64;
        let mut send = |item: Item| -> bool {
            if tokens.recv().is_err() {
                return false;
            }
            let ok = tx.send((number, item)).is_ok();
            number += 1;
            ok
        };
        let mut epoch = self.start.epoch;
        let mut skip = self.start.position;
        loop {
            if self.options.epochs.is_some_and(|n| epoch >= n) {
                return;
            }
            let mut keep_going = true;
            let result = self.epoch(epoch, &mut |item: Item| {
                if skip > 0 {
                    // Replaying up to the cursor: counted, not decoded. Read, never seeked to by
                    // byte offset: a gzip stream cannot seek, and the shuffle buffer must refill.
                    skip -= 1;
                } else if keep_going {
                    keep_going = send(item);
                }
            });
            if let Err(e) = result {
                send(Item::Fatal(e));
                return;
            }
            if !keep_going || !send(Item::EndOfEpoch) {
                return;
            }
            skip = 0;
            epoch += 1;
        }
    }

    /// One epoch's stream: shards in seeded order through the shuffle buffer.
    fn epoch(&self, epoch: u64, emit: &mut dyn FnMut(Item)) -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.options.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut order: Vec<usize> = (0..self.shards.len()).collect();
        if self.options.shuffle {
            order.shuffle(&mut rng);
        }
        if self.share.count > 1 {
            // The shard order above is shared by every share (each reads the same stream when
            // splitting by sample); the buffer's draws are this share's own.
            rng = ChaCha8Rng::seed_from_u64(
                self.share.seed(self.options.seed) ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
        }
        let (index, count, by_sample) = (
            self.share.index as u64,
            self.share.count as u64,
            !self.by_shard,
        );
        let mut read = 0u64;
        let capacity = if self.options.shuffle {
            self.options.shuffle_buffer.max(1)
        } else {
            1
        };
        let mut buffer: Vec<RawSample> = Vec::with_capacity(capacity);
        // Keys read this epoch (hashed: 8 bytes a sample). A key read again is skipped as
        // `duplicate-key`: the copy read first is used (within a shard the first in file order),
        // since reference caches are looked up by key.
        let mut keys: HashSet<u64> = HashSet::new();
        for &s in &order {
            read_shard(&self.shards[s], |item| {
                read += 1;
                if by_sample && (read - 1) % count != index {
                    return;
                }
                match item {
                    ShardItem::Skip(reason) => emit(Item::Skip(reason)),
                    ShardItem::Sample(raw) if !keys.insert(key_hash(&raw.key)) => {
                        emit(Item::Skip(SkipReason::DuplicateKey))
                    }
                    ShardItem::Sample(raw) => {
                        if capacity <= 1 {
                            emit(Item::Raw(raw));
                        } else if buffer.len() < capacity {
                            buffer.push(raw);
                        } else {
                            let i = rng.gen_range(0..buffer.len());
                            emit(Item::Raw(std::mem::replace(&mut buffer[i], raw)));
                        }
                    }
                }
            })?;
        }
        while !buffer.is_empty() {
            let i = rng.gen_range(0..buffer.len());
            emit(Item::Raw(buffer.swap_remove(i)));
        }
        Ok(())
    }
}
