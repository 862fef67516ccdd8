//! Files the CLI writes: atomically (a temp file beside the target, then a rename), so an
//! interrupted command never leaves a half-written result.
use std::path::Path;

use anyhow::{Context, Result};

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, text.as_bytes())
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Applies `key=value` overrides to a serde config: the value is read as JSON where it parses
/// (numbers, booleans), as a string otherwise; unknown keys fail on the config's
/// `deny_unknown_fields`.
pub fn with_overrides<T>(config: T, overrides: &[String]) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut value = serde_json::to_value(config)?;
    for item in overrides {
        let (key, raw) = item
            .split_once('=')
            .with_context(|| format!("--set {item:?}: expected key=value"))?;
        let object = value.as_object_mut().context("config is not a table")?;
        if !object.contains_key(key) {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            anyhow::bail!(
                "--set {key}: no such setting; known: {}",
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let parsed =
            serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.into()));
        object.insert(key.into(), parsed);
    }
    serde_json::from_value(value).context("--set: a value has the wrong type")
}
