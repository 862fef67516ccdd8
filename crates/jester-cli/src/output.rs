//! Files the CLI writes: atomically (a temp file beside the target, then a rename), so an
//! interrupted command never leaves a half-written result.
use std::path::Path;

use anyhow::{Context, Result};

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, text.as_bytes())
}

/// Creates the parent folder, then the one atomic write (`jester_data::atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(jester_data::atomic::write_atomic(path, bytes)?)
}
