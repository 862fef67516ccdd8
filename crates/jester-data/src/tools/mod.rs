//! What `jester shards` does: build shards from a folder of images and a captions file, inspect a
//! shard set, and split one deterministically.
pub mod contact_sheet;
pub mod convert;
pub mod inspect;
pub mod split;
