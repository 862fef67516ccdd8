//! Where a config comes from: a preset or a TOML file, then `key=value` settings (the CLI's
//! `--set`, a recipe's `set` lists). Unknown keys are refused with the known ones listed.
use std::path::Path;

use super::train::TrainConfig;
use crate::error::{Error, Result};

impl TrainConfig {
    /// `spec` is a preset name (tiny, small, b16) or a TOML file merged over its `preset = "..."`
    /// (default tiny); then `settings` are applied in order. Not yet validated.
    pub fn load(spec: &str, settings: &[String]) -> Result<Self> {
        let base = if Path::new(spec).extension().is_some_and(|e| e == "toml") {
            let path = Path::new(spec);
            let bad = |what: String| Error::Input {
                path: path.to_owned(),
                what,
            };
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| bad(format!("not TOML ({e})")))?;
            let mut file = serde_json::to_value(&table).expect("TOML is JSON-representable");
            let preset = file
                .as_object_mut()
                .and_then(|o| o.remove("preset"))
                .and_then(|p| p.as_str().map(str::to_owned))
                .unwrap_or_else(|| "tiny".into());
            let mut value = serde_json::to_value(Self::preset(&preset)?).expect("serialises");
            merge(&mut value, file).map_err(bad)?;
            serde_json::from_value(value)
                .map_err(|e| bad(format!("a setting is unknown or has the wrong type ({e})")))?
        } else {
            Self::preset(spec)?
        };
        with_overrides(base, settings)
    }
}

/// Deep-merges `patch` into `base`, refusing keys `base` does not have.
fn merge(base: &mut serde_json::Value, patch: serde_json::Value) -> Result<(), String> {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value)?,
                    // A field serialisation leaves out at its default (selection_groups,
                    // precision), or a misspelt one: the config denies unknown fields, so reading
                    // it back refuses the latter, naming the fields it expected.
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
    Ok(())
}

/// Applies `key=value` settings to a serde config; nested settings use dotted keys
/// (`benchmark.pool=1000`). The value is read as JSON where it parses (numbers, booleans, lists),
/// as a string otherwise; unknown keys are refused with the known ones listed.
pub fn with_overrides<T>(config: T, settings: &[String]) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let bad = |what: String| Error::invalid("--set", what);
    let mut value = serde_json::to_value(config).expect("configs serialise");
    for item in settings {
        let (key, raw) = item
            .split_once('=')
            .ok_or_else(|| bad(format!("{item:?}: expected key=value")))?;
        let parts: Vec<&str> = key.split('.').collect();
        let mut slot = &value;
        for (depth, part) in parts.iter().enumerate() {
            let object = slot.as_object().ok_or_else(|| {
                bad(format!(
                    "{key}: {} is not a group of settings",
                    parts[..depth].join(".")
                ))
            })?;
            let leaf = depth + 1 == parts.len();
            match object.get(*part) {
                Some(next) => slot = next,
                None if leaf => match omitted_field::<T>(&value, &parts, raw) {
                    Omitted::Accepted => {}
                    Omitted::BadValue(why) => {
                        return Err(bad(format!(
                            "{key}={raw}: a value of the wrong type ({why})"
                        )))
                    }
                    Omitted::Unknown => {
                        let mut known: Vec<&str> = object.keys().map(String::as_str).collect();
                        known.sort();
                        return Err(bad(format!(
                            "{key}: no such setting; known here: {}",
                            known.join(", ")
                        )));
                    }
                },
                None => {
                    let mut known: Vec<&str> = object.keys().map(String::as_str).collect();
                    known.sort();
                    return Err(bad(format!(
                        "{key}: no such setting; known here: {}",
                        known.join(", ")
                    )));
                }
            }
        }
        let (last, parents) = parts.split_last().expect("split yields a part");
        lookup(&mut value, parents).insert((*last).to_string(), parse_value(raw));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("a value has the wrong type ({e})")))
}

/// A setting's value: JSON where it parses, a string otherwise.
fn parse_value(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.into()))
}

/// The object at `path` in `value` (checked to exist by the caller).
fn lookup<'v>(
    value: &'v mut serde_json::Value,
    path: &[&str],
) -> &'v mut serde_json::Map<String, serde_json::Value> {
    let mut slot = value;
    for part in path {
        slot = slot.get_mut(*part).expect("checked");
    }
    slot.as_object_mut().expect("checked")
}

enum Omitted {
    Accepted,
    Unknown,
    BadValue(String),
}

/// Whether `path` names a field that serialisation leaves out at its default (e.g.
/// `selection_groups`, `precision`): the config reads with it set to `raw` ([`Omitted::Accepted`]),
/// refuses it as an unknown field (the configs deny unknown fields: a misspelt key), or refuses
/// the value.
fn omitted_field<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    path: &[&str],
    raw: &str,
) -> Omitted {
    let mut candidate = value.clone();
    let (last, parents) = path.split_last().expect("a key has one part");
    let mut slot = &mut candidate;
    for part in parents {
        match slot.get_mut(*part) {
            Some(next) => slot = next,
            None => return Omitted::Unknown,
        }
    }
    let Some(object) = slot.as_object_mut() else {
        return Omitted::Unknown;
    };
    object.insert((*last).to_string(), parse_value(raw));
    match serde_json::from_value::<T>(candidate) {
        Ok(_) => Omitted::Accepted,
        Err(e) if e.to_string().starts_with("unknown field") => Omitted::Unknown,
        Err(e) => Omitted::BadValue(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_apply_in_order_and_unknown_keys_are_refused_naming_the_known_ones() {
        let config = TrainConfig::load(
            "tiny",
            &["optim.lr=3e-4".into(), "batch=64".into(), "batch=32".into()],
        )
        .unwrap();
        assert_eq!(config.optim.lr, 3e-4);
        assert_eq!(config.batch, 32);
        let err = TrainConfig::load("tiny", &["optim.lrr=1".into()])
            .unwrap_err()
            .to_string();
        // Settings that serialisation leaves out at their defaults can be set all the same.
        let config = TrainConfig::load(
            "tiny",
            &["selection_groups=2".into(), "precision=bf16".into()],
        )
        .unwrap();
        assert_eq!(config.selection_groups, 2);
        assert!(TrainConfig::load("tiny", &["selection_group=2".into()])
            .unwrap_err()
            .to_string()
            .contains("no such setting"));
        let value_err = TrainConfig::load("tiny", &["precision=bf15".into()])
            .unwrap_err()
            .to_string();
        assert!(
            value_err.contains("wrong type") && value_err.contains("bf15"),
            "{value_err}"
        );
        // A TOML file may name them too; a misspelt key there is refused.
        let dir = std::env::temp_dir().join(format!("jester-groups-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("groups.toml");
        std::fs::write(&toml, "selection_groups = 4\n[optim]\nlr = 1e-3\n").unwrap();
        let config = TrainConfig::load(toml.to_str().unwrap(), &[]).unwrap();
        assert_eq!((config.selection_groups, config.optim.lr), (4, 1e-3));
        std::fs::write(&toml, "selection_groupz = 4\n").unwrap();
        let toml_err = TrainConfig::load(toml.to_str().unwrap(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            toml_err.contains("unknown field `selection_groupz`"),
            "{toml_err}"
        );
        let _ = std::fs::remove_dir_all(dir);
        assert!(
            err.contains("no such setting") && err.contains("lr"),
            "{err}"
        );
        let err = TrainConfig::load("tiny", &["batch=many".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("wrong type"), "{err}");
        assert!(TrainConfig::load("huge", &[]).is_err());
    }

    #[test]
    fn a_toml_file_is_merged_over_its_preset() {
        let dir = std::env::temp_dir().join(format!("jester-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.toml");
        std::fs::write(&path, "preset = \"small\"\nsteps = 7\n[optim]\nlr = 0.5\n").unwrap();
        let config = TrainConfig::load(path.to_str().unwrap(), &[]).unwrap();
        assert_eq!(config.steps, 7);
        assert_eq!(config.optim.lr, 0.5);
        assert_eq!(
            config.model,
            crate::model::ModelConfig::preset("small").unwrap()
        );
        std::fs::write(&path, "stepz = 7\n").unwrap();
        let err = TrainConfig::load(path.to_str().unwrap(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `stepz`") && err.contains("`steps`"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
