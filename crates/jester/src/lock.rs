//! Exclusive locks on what a command writes — a run folder, an embedding cache, an experiment's
//! work folder — so that two processes never write one at once (two `jester train --out X`
//! started together would both pass the "already holds a run" check).
//!
//! The lock is the OS's advisory lock (`flock`) on a small file, released by the kernel when the
//! process ends however it ends, so a crash leaves nothing stale: a lock file without a live holder
//! is simply taken again. The file holds the holder's pid, for the error message of the refused.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
    remove: bool,
}

impl Lock {
    /// Takes the lock on the file `path` (created if absent) without waiting; `what` names the
    /// thing it protects in the error a second process gets.
    pub fn acquire(path: &Path, what: &str) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "pid unknown".to_owned(),
                    pid => format!("pid {pid}"),
                };
                return Err(Error::Locked {
                    path: path.to_owned(),
                    what: what.to_owned(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self {
            file,
            path: path.to_owned(),
            remove: false,
        })
    }

    /// The lock for the folder `dir` (which must exist): the file `dir/.lock`, kept there.
    pub fn folder(dir: &Path, what: &str) -> Result<Self> {
        Self::acquire(&dir.join(LOCK_FILE), what)
    }

    /// The lock for the file `target`, before it exists: `target.lock` beside it, removed when
    /// the lock is released, so a finished cache leaves no lock file next to it.
    pub fn beside(target: &Path, what: &str) -> Result<Self> {
        let mut name = target.file_name().unwrap_or_default().to_owned();
        name.push(".lock");
        let mut lock = Self::acquire(&target.with_file_name(name), what)?;
        lock.remove = true;
        Ok(lock)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The name of a locked folder's lock file.
pub const LOCK_FILE: &str = ".lock";

impl Drop for Lock {
    fn drop(&mut self) {
        if self.remove {
            // Removed while still held: a process that opened it meanwhile is refused, and the
            // next one creates a fresh file.
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jester-lock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = temp("second");
        let first = Lock::folder(&dir, "the run folder").unwrap();
        let err = Lock::folder(&dir, "the run folder")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id()))
                && err.contains("the run folder is in use"),
            "{err}"
        );
        drop(first);
        Lock::folder(&dir, "the run folder").unwrap();
    }

    #[test]
    fn a_lock_beside_a_file_is_removed_on_release() {
        let dir = temp("beside");
        let target = dir.join("cache.safetensors");
        let lock = Lock::beside(&target, "the embedding cache").unwrap();
        assert!(dir.join("cache.safetensors.lock").exists());
        assert!(Lock::beside(&target, "the embedding cache").is_err());
        drop(lock);
        assert!(!dir.join("cache.safetensors.lock").exists());
    }

    #[test]
    fn a_stale_lock_file_is_taken_again() {
        // A crashed holder leaves the file with its pid, but no lock.
        let dir = temp("stale");
        std::fs::write(dir.join(LOCK_FILE), "999999").unwrap();
        let lock = Lock::folder(&dir, "the run folder").unwrap();
        let pid = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(pid, std::process::id().to_string());
    }
}
