//! Files the CLI writes: atomically (a temp file beside the target, then a rename), so an
//! interrupted command never leaves a half-written result.
use std::path::Path;

use anyhow::{Context, Result};

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, text.as_bytes())
}

/// Creates the parent folder, then the library's atomic write (temp file synced, renamed, folder
/// synced).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(jester::train::checkpoint::write_atomic(path, bytes)?)
}

/// Applies `key=value` overrides to a serde config; nested settings use dotted keys
/// (`benchmark.pool=1000`). The value is read as JSON where it parses (numbers, booleans, lists),
/// as a string otherwise; unknown keys are refused with the known ones listed.
pub fn with_overrides<T>(config: T, overrides: &[String]) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut value = serde_json::to_value(config)?;
    for item in overrides {
        let (key, raw) = item
            .split_once('=')
            .with_context(|| format!("--set {item:?}: expected key=value"))?;
        let mut slot = &mut value;
        let parts: Vec<&str> = key.split('.').collect();
        for (depth, part) in parts.iter().enumerate() {
            let object = slot.as_object_mut().with_context(|| {
                format!(
                    "--set {key}: {} is not a group of settings",
                    parts[..depth].join(".")
                )
            })?;
            if !object.contains_key(*part) {
                let mut known: Vec<&String> = object.keys().collect();
                known.sort();
                let known: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
                anyhow::bail!(
                    "--set {key}: no such setting; known here: {}",
                    known.join(", ")
                );
            }
            slot = object.get_mut(*part).expect("checked");
        }
        *slot = serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.into()));
    }
    serde_json::from_value(value).context("--set: a value has the wrong type")
}
