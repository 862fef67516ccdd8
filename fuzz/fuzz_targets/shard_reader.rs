//! Arbitrary bytes as a shard: the reader must return samples, skips or a "not a tar" error, and
//! decoding what it returns must never panic, whatever the bytes.
//!
//! Run: `cargo fuzz run shard_reader` (needs cargo-fuzz; on a stable toolchain prefix
//! `RUSTC_BOOTSTRAP=1`).
#![no_main]

use jester_data::decode::{decode, DecodeOptions};
use jester_data::shard_reader::{read_tar, ShardItem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = DecodeOptions { max_pixels: 1 << 20, ..DecodeOptions::default() };
    let _ = read_tar(data, std::path::Path::new("fuzz.tar"), |item| {
        if let ShardItem::Sample(raw) = item {
            let _ = decode(&raw, &options);
        }
    });
});
