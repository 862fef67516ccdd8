//! Writing WebDataset shards: POSIX tar files `00000.tar, 00001.tar, …` of at most
//! `samples_per_shard` samples each, members `KEY.EXT` in key order. Each shard is written to a
//! temporary name and renamed when complete, so a reader never sees half a shard.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sample::RawSample;

pub struct ShardWriter {
    dir: PathBuf,
    samples_per_shard: usize,
    current: Option<(tar::Builder<BufWriter<File>>, PathBuf, PathBuf)>,
    in_current: usize,
    written: Vec<PathBuf>,
    samples: usize,
}

impl ShardWriter {
    /// Shards go to `dir` (created if missing) as `00000.tar`, `00001.tar`, …
    pub fn new(dir: &Path, samples_per_shard: usize) -> Result<Self> {
        if samples_per_shard == 0 {
            return Err(Error::Config {
                what: "shard writer",
                why: "samples per shard must be at least 1".into(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            samples_per_shard,
            current: None,
            in_current: 0,
            written: Vec::new(),
            samples: 0,
        })
    }

    /// Appends one sample; starts a new shard when the current one is full.
    pub fn write(&mut self, sample: &RawSample) -> Result<()> {
        if sample.key.is_empty() || sample.key.contains(['.', '/']) {
            return Err(Error::Config {
                what: "shard writer",
                why: format!(
                    "sample key {:?} must be non-empty, without '.' or '/'",
                    sample.key
                ),
            });
        }
        if self.current.is_none() || self.in_current == self.samples_per_shard {
            self.close_current()?;
            let index = self.written.len();
            let path = self.dir.join(format!("{index:05}.tar"));
            let tmp = self.dir.join(format!(".{index:05}.tar.tmp"));
            let file = File::create(&tmp).map_err(|source| Error::Io {
                path: tmp.clone(),
                source,
            })?;
            self.current = Some((tar::Builder::new(BufWriter::new(file)), tmp, path));
            self.in_current = 0;
        }
        let (builder, tmp, _) = self.current.as_mut().expect("opened above");
        for (extension, bytes) in &sample.members {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            let name = format!("{}.{extension}", sample.key);
            builder
                .append_data(&mut header, &name, bytes.as_slice())
                .map_err(|source| Error::Io {
                    path: tmp.clone(),
                    source,
                })?;
        }
        self.in_current += 1;
        self.samples += 1;
        Ok(())
    }

    /// Finishes the last shard; returns every shard written, in order.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        self.close_current()?;
        Ok(std::mem::take(&mut self.written))
    }

    /// Samples written so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some((builder, tmp, path)) = self.current.take() {
            let io = |source| Error::Io {
                path: tmp.clone(),
                source,
            };
            let mut inner = builder.into_inner().map_err(io)?;
            inner.flush().map_err(io)?;
            inner
                .into_inner()
                .map_err(|e| io(e.into_error()))?
                .sync_all()
                .map_err(io)?;
            crate::atomic::commit(&tmp, &path)?;
            self.written.push(path);
        }
        Ok(())
    }
}
