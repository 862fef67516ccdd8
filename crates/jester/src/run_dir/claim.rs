//! The run folder while a run holds it: locked for the run's whole life (two `jester train --out X`
//! started together must not both write it), and, for a fresh run, cleaned of whatever the start
//! wrote if the start fails — a refused input leaves no half-made run behind, so rerunning the same
//! command after fixing the input just works.
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::lock::Lock;

pub struct Claim {
    out: PathBuf,
    /// Entries that were there when this start took the lock (a fresh run's folder may
    /// pre-exist, empty or holding the user's own files); everything else is this start's to
    /// remove on failure. Taken under the lock, so it never counts another process's files as
    /// this one's.
    before: BTreeSet<OsString>,
    /// Whether this process made the folder (it then goes too, if nothing else is in it).
    created: bool,
    /// Set while a fresh start has not yet completed its first step.
    armed: bool,
    // Declared last: released after the clean-up in `drop`.
    lock: Lock,
}

impl Claim {
    /// A fresh run's folder: created if absent, locked, and refused if it already holds a run.
    /// A process that does not get the lock changes nothing: the folder, even one it created a
    /// moment before, belongs to the holder.
    pub fn fresh(out: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: out.to_owned(),
            source,
        };
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let created = match std::fs::create_dir(out) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && out.is_dir() => false,
            Err(e) => return Err(io(e)),
        };
        let lock = Lock::folder(out, "the run folder")?;
        let claim = Self {
            out: out.to_owned(),
            before: entries(out)?,
            created,
            armed: true,
            lock,
        };
        if out.join("config.json").exists() {
            return Err(Error::Input {
                path: out.to_owned(),
                what: "already holds a run; continue it with --resume, or give a new --out folder"
                    .into(),
            });
        }
        Ok(claim)
    }

    /// An existing run's folder, locked.
    pub fn existing(out: &Path) -> Result<Self> {
        if !out.join("config.json").exists() {
            return Err(Error::Input {
                path: out.to_owned(),
                what:
                    "not a jester run folder (no config.json); `jester train --out DIR` makes one"
                        .into(),
            });
        }
        Ok(Self {
            out: out.to_owned(),
            before: BTreeSet::new(),
            created: false,
            armed: false,
            lock: Lock::folder(out, "the run folder")?,
        })
    }

    /// The folder's paths and files.
    pub fn dir(&self) -> super::dir::RunDir {
        super::dir::RunDir::new(&self.out)
    }

    /// The run's first step completed: from now on the folder holds a run and is never cleaned
    /// up (a later failure leaves it to resume).
    pub fn started(&mut self) {
        self.armed = false;
    }
}

fn entries(dir: &Path) -> Result<BTreeSet<OsString>> {
    std::fs::read_dir(dir)
        .and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Only what this start wrote while holding the lock.
        let Ok(now) = entries(&self.out) else { return };
        for name in now.difference(&self.before) {
            let path = self.out.join(name);
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
        if self.lock.created_file() {
            // Still held: a process that opened it meanwhile sees it gone and retries (lock.rs).
            self.lock.remove_file();
        }
        if self.created {
            // Fails, as it should, if anything else is there.
            let _ = std::fs::remove_dir(&self.out);
        }
    }
}
