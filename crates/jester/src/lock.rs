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
    /// Whether this process created the lock file.
    created: bool,
}

/// Attempts when the lock file keeps being replaced under this process.
const RETRIES: usize = 100;

/// The pid a holder wrote into its lock file. A holder writes it just after locking, so an empty
/// file is read again for a moment before the holder is called unknown.
fn holder(file: &mut File) -> String {
    for _ in 0..50 {
        let mut pid = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut pid).is_ok() {
            let pid = pid.trim();
            if !pid.is_empty() {
                return format!("pid {pid}");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    "pid unknown".to_owned()
}

/// Whether `path` still names the open `file` (same device and inode).
#[cfg(unix)]
fn names(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn names(path: &Path, _file: &File) -> bool {
    path.exists()
}

impl Lock {
    /// Takes the lock on the file `path` (created if absent) without waiting; `what` names the
    /// thing it protects in the error a second process gets, with the holder's pid.
    ///
    /// A holder may remove the file while it still holds it (a lock beside a finished file, a run
    /// folder cleaned after a failed start): a process that opened the old file in the meantime
    /// would lock a file no longer at `path` while a third creates and locks a new one — two
    /// holders. So after locking, the path must still name the file locked, else this retries.
    pub fn acquire(path: &Path, what: &str) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        for _ in 0..RETRIES {
            let created = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path);
            let (file, created) = match created {
                Ok(file) => (file, true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    match OpenOptions::new().read(true).write(true).open(path) {
                        Ok(file) => (file, false),
                        // Removed between the two opens: start again.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io(e)),
                    }
                }
                Err(e) => return Err(io(e)),
            };
            if let Some(lock) = Self::take(path, what, file, created)? {
                return Ok(lock);
            }
        }
        Err(Error::Locked {
            path: path.to_owned(),
            what: what.to_owned(),
            holder: format!("its lock file was replaced {RETRIES} times while this one waited"),
        })
    }

    /// Locks the open `file` (opened at `path`): the lock, `None` when the path no longer names
    /// the file once locked (its holder removed it meanwhile: try again), or the refusal naming
    /// the holder.
    fn take(path: &Path, what: &str, mut file: File, created: bool) -> Result<Option<Self>> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: path.to_owned(),
                    what: what.to_owned(),
                    holder: holder(&mut file),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        if !names(path, &file) {
            // The holder removed the file after this open: a lock on it guards nothing.
            return Ok(None);
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Some(Self {
            file,
            path: path.to_owned(),
            remove: false,
            created,
        }))
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

    /// Whether this process created the lock file (so removing it leaves what was there).
    pub fn created_file(&self) -> bool {
        self.created
    }

    /// Removes the lock file now, while still holding the lock (released when dropped): a process
    /// that opened it meanwhile finds the path no longer names it and retries.
    pub fn remove_file(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.remove = false;
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
    fn a_lock_on_a_file_removed_under_it_is_not_held() {
        // A process opened the lock file; its holder then removed it and released the lock, and
        // a third process made and locked a new one. Locking the old file must not make a second
        // holder: the path no longer names it, so the taker is told to start again.
        let dir = temp("replaced");
        let path = dir.join(LOCK_FILE);
        let mut first = Lock::acquire(&path, "the run folder").unwrap();
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        first.remove_file();
        drop(first);
        let third = Lock::acquire(&path, "the run folder").unwrap();
        assert!(Lock::take(&path, "the run folder", opened, false)
            .unwrap()
            .is_none());
        // Starting again, it meets the third process's lock and names it.
        let err = Lock::acquire(&path, "the run folder").unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(third);
    }

    #[test]
    fn a_refusal_names_the_holder_once_it_has_written_its_pid() {
        // A holder that has locked but not written its pid yet is "unknown" (after a moment's
        // re-reading); once written, the refused process names it.
        let dir = temp("pid");
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        file.try_lock().unwrap();
        let err = Lock::acquire(&path, "the run folder")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pid unknown"), "{err}");
        std::fs::write(&path, "4242").unwrap();
        let err = Lock::acquire(&path, "the run folder")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pid 4242"), "{err}");
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
