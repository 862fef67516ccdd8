//! The one way jester writes a file (docs/ARCHITECTURE.md, "Files"): into a temporary file beside the
//! target, synced to disk, renamed over the target, and the folder synced so the rename itself
//! survives a power cut. A reader sees the old file or the new one, never half of one; a write that
//! fails leaves the target as it was and removes its temporary file.
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { path, source }
}

/// The temporary name beside `path`: `NAME.tmp` (or `NAME.tmp.EXT` with `keep_extension`, for
/// writers that pick a format by the file's extension).
pub fn temp_path(path: &Path, keep_extension: bool) -> PathBuf {
    let name = path.file_name().unwrap_or_default();
    let mut temp = OsString::from(name);
    temp.push(".tmp");
    if keep_extension {
        if let Some(ext) = path.extension() {
            temp.push(".");
            temp.push(ext);
        }
    }
    path.with_file_name(temp)
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, false, |temp| {
        let mut file = File::create(temp).map_err(io(temp))?;
        file.write_all(bytes).map_err(io(temp))
    })
}

/// Writes `value` as pretty JSON (with a final newline) to `path` atomically.
pub fn write_json_atomic(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Encode {
        what: "json",
        why: e.to_string(),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Runs `write` on a temporary path beside `path`, then [`commit`]s it to `path`. For writers that
/// only take a path (safetensors, tokenizers); `keep_extension` as in [`temp_path`].
pub fn write_atomic_with<E>(
    path: &Path,
    keep_extension: bool,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E>
where
    E: From<Error>,
{
    let temp = temp_path(path, keep_extension);
    if let Err(e) = write(&temp) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    commit(&temp, path).map_err(E::from)
}

/// Makes the finished file `temp` the file `path`: syncs it, renames it over `path`, syncs the
/// folder. On failure the temporary file is removed and `path` is untouched.
pub fn commit(temp: &Path, path: &Path) -> Result<()> {
    let result = File::open(temp)
        .and_then(|f| f.sync_all())
        .map_err(io(temp))
        .and_then(|()| std::fs::rename(temp, path).map_err(io(path)));
    if result.is_err() {
        let _ = std::fs::remove_file(temp);
    }
    result?;
    sync_parent(path)
}

/// Syncs the folder holding `path`, making a rename into it durable.
pub fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io(parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("jester-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.json");
        write_atomic(&path, b"old").unwrap();
        write_json_atomic(&path, &serde_json::json!({"x": 1})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\n  \"x\": 1\n}\n"
        );
        let failed: Result<()> = write_atomic_with(&path, true, |temp| {
            std::fs::write(temp, b"half").unwrap();
            Err(Error::Config {
                what: "test",
                why: "the writer failed".into(),
            })
        });
        assert!(failed.is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\n  \"x\": 1\n}\n"
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
        assert_eq!(temp_path(&path, true), dir.join("a.json.tmp.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
